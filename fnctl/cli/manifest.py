"""`fnctl deploy` and `fnctl delete` with no subcommand: every function of a serverless.yaml.

    fnctl deploy [-f serverless.yaml|URL] [--function NAME]... [--concurrency 3] [--dry-run]
    fnctl delete -f serverless.yaml [--function NAME]...
"""

from __future__ import annotations

import click

from fnctl import validation
from fnctl.cli import report_error
from fnctl.cli.output import TerminalReporter, dump
from fnctl.errors import FnctlError, UsageError

MANIFEST_HELP = "serverless.yaml file or https URL (default: serverless.yaml in the current folder)."
FUNCTION_HELP = "Only this function (NAME or SERVICE-NAME), repeatable."


def deploy_options(func):
    options = [
        click.option("-f", "--from", "manifest_file", default=None, metavar="FILE|URL", help=MANIFEST_HELP),
        click.option("--function", "functions", multiple=True, metavar="NAME",
                     help=FUNCTION_HELP + " A deploy of some functions removes nothing."),
        click.option("--concurrency", type=click.IntRange(min=1), default=3, show_default=True,
                     help="Deploy (and so build) at most this many functions at once."),
        click.option("--dry-run", is_flag=True, help="Print every object the deploy would create, in one list."),
        click.option("-q", "--quiet", is_flag=True, help="Hide build logs (phases still show)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def delete_options(func):
    options = [
        click.option("-f", "--from", "manifest_file", default=None, metavar="FILE|URL", help=MANIFEST_HELP),
        click.option("--function", "functions", multiple=True, metavar="NAME", help=FUNCTION_HELP),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def refuse_with_subcommand(ctx: click.Context, given: dict) -> None:
    """Options of the manifest form belong after `fnctl deploy`/`delete`, never before a subcommand."""
    params = {p.name: p for p in ctx.command.params}
    misplaced = [params[name].opts[-1] for name, value in given.items()
                 if value not in (params[name].default, (), None, False)]
    if misplaced:
        raise UsageError(f"options given before `{ctx.invoked_subcommand}` belong to the manifest form: "
                         + ", ".join(misplaced),
                         f"put them after `{ctx.info_name} {ctx.invoked_subcommand}`")


def _load(manifest_file: str | None, command: str):
    from fnctl import manifest

    found = manifest.find(manifest_file)
    if found is None:
        one = "`fnctl deploy service NAME -f SOURCE`" if command == "deploy" else "`fnctl delete service NAME`"
        raise UsageError(f"no {manifest.DEFAULT_FILE} in this folder and no -f given",
                         f"run it where {manifest.DEFAULT_FILE} is, give -f PATH|URL, or use {one} for one service")
    return manifest.load(found)


def _targets(local, cluster, context, namespace):
    from fnctl.app import choose_target

    def make():
        return choose_target(TerminalReporter(), local=local, cluster=cluster, context=context, namespace=namespace)
    return make


def deploy(ctx: click.Context, manifest_file, functions, concurrency, dry_run, quiet, local, cluster, context,
           namespace, output) -> None:
    from fnctl import fleet

    m = _load(manifest_file, "deploy")
    picked = m.select(functions)
    namespace = validation.namespace(namespace) or m.namespace
    reporter = TerminalReporter(quiet=quiet)
    if dry_run:
        from fnctl.app import dry_run as plan

        objects: list[dict] = []
        for f in picked:
            objects += plan(f.request, fleet.Prefixed(reporter, f.name), local=local, cluster=cluster,
                            context=context, namespace=namespace)
        if output == "yaml" and not local:
            dump({"apiVersion": "v1", "kind": "List", "items": objects}, "yaml")
        else:
            dump(objects, "yaml" if output == "yaml" else "json")
        return
    make = _targets(local, cluster, context, namespace)
    target = _announce(local, cluster, context, namespace, reporter)

    def show(outcome: fleet.Outcome) -> None:
        if outcome.ok:
            assert outcome.result is not None
            line = f"{outcome.service}  {outcome.result.service.url}"
        else:
            assert outcome.error is not None
            line = f"{outcome.service}  failed: {outcome.error.message}"
        click.echo(line, err=output != "human")
        if outcome.error is not None and outcome.error.hint:
            click.echo(f"  Hint ({outcome.service}): {outcome.error.hint}", err=True)

    outcomes = fleet.deploy_all(picked, make, reporter, concurrency, show)
    removed: list[str] = []
    failed_removals: list[FnctlError] = []
    if not functions:
        def gone(name: str, error: FnctlError | None) -> None:
            if error is None or error.exit_code == 3:
                removed.append(name)
                click.echo(f"{name}  removed: no longer in {m.file}", err=output != "human")
            else:
                failed_removals.append(error)
                click.echo(f"{name}  not removed: {error.message}", err=True)
        fleet.delete_all(fleet.stale(m, target), target, gone)
    if output != "human":
        dump({"service": m.service, "manifest": m.file, "target": target.name,
              "functions": [o.to_dict() for o in outcomes], "removed": removed}, output)
    failures = [o.error for o in outcomes if o.error is not None] + failed_removals
    if failures:
        click.echo(f"Error: {len(failures)} of {len(outcomes)} functions of {m.service} failed", err=True)
        ctx.exit(failures[0].exit_code)


def delete(ctx: click.Context, manifest_file, functions, local, cluster, context, namespace) -> None:
    from fnctl import fleet

    m = _load(manifest_file, "delete")
    picked = m.select(functions)
    namespace = validation.namespace(namespace) or m.namespace
    target = _announce(local, cluster, context, namespace, TerminalReporter())
    names = [f.request.name for f in picked]
    if not functions:
        names += [n for n in fleet.stale(m, target) if n not in names]
    failures: list[FnctlError] = []

    def said(name: str, error: FnctlError | None) -> None:
        if error is None:
            click.echo(f"Service {name} deleted")
        elif error.exit_code == 3:
            click.echo(f"Service {name} not found", err=True)
        else:
            failures.append(error)
            report_error(error, ctx)

    fleet.delete_all(names, target, said)
    if failures:
        ctx.exit(failures[0].exit_code)


def _announce(local, cluster, context, namespace, reporter):
    """The target, chosen once up front (saying which when nothing chose it)."""
    from fnctl.app import choose_target

    return choose_target(reporter, local=local, cluster=cluster, context=context, namespace=namespace,
                         announce=True)
