"""fnctl's command line: thin commands over the core.

Exit codes (docs/cli.md): 0 ok, 1 unexpected, 2 bad input, 3 not found,
4 environment (no Docker engine, no cluster), 5 build failed, 6 deploy
failed, 7 timed out, 8 cluster API error, 70 internal error, 130 interrupted.
"""

from __future__ import annotations

import os
import traceback

import click

from fnctl import __version__
from fnctl.cli.aliases import ResourceGroup
from fnctl.cli.output import dump
from fnctl.errors import FnctlError, InternalError, Interrupted, UsageError

OUTPUT_KEY = "fnctl.output"      # ctx.meta (shared by every nested context): the -o the command was given
STRUCTURED = ("json", "yaml")    # the -o formats whose errors are an object on stdout too
ARGS_KEY = "fnctl.args"          # ctx.meta: the arguments as given, for usage errors under -o json


class FnctlGroup(click.Group):
    """Turns every FnctlError into a message and an exit code, never a traceback."""

    group_class = ResourceGroup     # the verbs (`deploy`, `get`, ...): their nouns have aliases

    def make_context(self, info_name, args, parent=None, **extra) -> click.Context:
        given = list(args)
        try:
            ctx = super().make_context(info_name, args, parent, **extra)
        except click.ClickException as e:     # e.g. `fnctl --bogus`: the group's own options
            report_usage_error(e, given)
            raise
        ctx.meta[ARGS_KEY] = given
        return ctx

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FnctlError as e:
            report_error(e, ctx)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            report_error(Interrupted("interrupted"), ctx)
            ctx.exit(Interrupted.exit_code)
        except click.ClickException as e:    # a usage error of a command: click shows it on stderr
            report_usage_error(e, ctx.meta.get(ARGS_KEY, []))
            raise
        except (click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:   # a bug: say so plainly, keep the traceback for FNCTL_DEBUG
            if os.environ.get("FNCTL_DEBUG"):
                traceback.print_exc()
            report_error(InternalError(
                f"internal error in fnctl: {type(e).__name__}: {e}",
                "Please report it with the command you ran; FNCTL_DEBUG=1 shows the traceback."), ctx)
            ctx.exit(InternalError.exit_code)


def report_error(error: FnctlError, ctx: click.Context) -> None:
    from fnctl.redact import redact

    # Whatever a message quotes (a git URL, git's own stderr) is shown without URL credentials.
    body = {k: redact(v) if isinstance(v, str) else v for k, v in error.to_dict().items()}
    if ctx.meta.get(OUTPUT_KEY) in STRUCTURED:
        dump(body, ctx.meta[OUTPUT_KEY])
    click.echo(f"Error: {body['message']}", err=True)
    if body["details"]:
        click.echo("\n".join("  | " + line for line in body["details"].splitlines()), err=True)
    if body["hint"]:
        click.echo(f"  Hint: {body['hint']}", err=True)


def report_usage_error(error: click.ClickException, args: list[str]) -> None:
    """Under `-o json|yaml` a usage error click reports (unknown option, bad value) is an error object
    on stdout too, shaped as every other error; click still writes its usage text to stderr."""
    ctx = getattr(error, "ctx", None)
    fmt = output_asked(ctx, args)
    if fmt not in STRUCTURED:
        return
    hint = f"`{ctx.command_path} --help` lists its options" if ctx is not None else None
    from fnctl.redact import redact

    dump(UsageError(redact(error.format_message()), hint).to_dict() | {"exitCode": error.exit_code}, fmt)


def output_asked(ctx: click.Context | None, args: list[str]) -> str | None:
    """The `-o` a command was given when a usage error stopped click before the option's callback.

    The command's own parser reads its arguments again, leniently (unknown options and bad values
    skipped), so a value that only looks like `-o json` (`--env-secret -o`) is not taken for it.
    A group's error (an unknown command such as "get nothing -o json") has no command to ask:
    the last `-o` is taken."""
    if ctx is not None and not isinstance(ctx.command, click.Group):
        depth, parent = 0, ctx.parent
        while parent is not None:
            depth, parent = depth + 1, parent.parent
        try:
            again = ctx.command.make_context(ctx.info_name, list(args[depth:]), resilient_parsing=True,
                                             ignore_unknown_options=True)
        except click.ClickException:
            return None
        return again.params.get("output")
    found = None
    for i, arg in enumerate(args):
        if arg == "--":
            break
        if arg in ("-o", "--output") and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--output="):
            found = arg.partition("=")[2]
        elif arg.startswith("-o") and not arg.startswith("--") and len(arg) > 2:
            found = arg[2:]
    return found


@click.group(cls=FnctlGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fnctl")
def cli() -> None:
    """Deploy functions as autoscaled Knative Services, or to the local Docker engine.

    \b
      fnctl deploy service hello -f examples/bash-echo --build-template bash --wait
      fnctl get buildtemplate
      curl -d '{"text":"hi"}' "$(fnctl describe service hello -o url)"
    """


from fnctl.cli import commands, credentials  # noqa: E402,F401  (registers the commands)


def main() -> None:
    cli(prog_name="fnctl")
