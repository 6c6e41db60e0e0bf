"""The commands: parse options, make one call into the core, render the result."""

from __future__ import annotations

import click

from fnctl import validation
from fnctl.cli import OUTPUT_KEY, cli, views
from fnctl.cli import manifest as manifest_cli
from fnctl.cli.completion import complete_build_argument, complete_service, complete_source, complete_template
from fnctl.cli.output import TerminalReporter, dump, log_line, table
from fnctl.model import DeployRequest


def target_options(func):
    """Where to act: the local engine or a cluster (default: a cluster if configured)."""
    options = [
        click.option("--local", is_flag=True, help="Use the local Docker engine (the default with no kubeconfig)."),
        click.option("--cluster", is_flag=True, help="Use the Kubernetes cluster of the kubeconfig."),
        click.option("--context", default=None, help="Kubeconfig context to use (implies --cluster)."),
        click.option("-n", "--namespace", default=None, help="Namespace (default: the context's, else default)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def output_option(*extra: str, default: str = "human"):
    choices = ("human", "json", "yaml", *extra)
    return click.option("-o", "--output", type=click.Choice(choices), default=default, show_default=True,
                        is_eager=True, callback=_remember_output,
                        help="Output format; progress and errors always go to stderr.")


def _remember_output(ctx: click.Context, _param: click.Parameter, value: str) -> str:
    """Errors are rendered by the group (fnctl.cli.report_error): it reads the choice here."""
    ctx.meta[OUTPUT_KEY] = value
    return value


def _target(reporter, local, cluster, context, namespace, announce=False):
    from fnctl.app import choose_target

    return choose_target(reporter, local=local, cluster=cluster, context=context,
                         namespace=validation.namespace(namespace), announce=announce)


def _int_option(name: str, help_text: str):
    return click.option(name, type=click.IntRange(min=0), default=None, help=help_text)


@cli.group(invoke_without_command=True)
@manifest_cli.deploy_options
@target_options
@output_option()
@click.pass_context
def deploy(ctx, **options) -> None:
    """Create or update a function service, or store a build template in the cluster.

    With no subcommand: every function of serverless.yaml (here, or -f FILE|URL), at most
    --concurrency at once, one line per function as it finishes; a full deploy removes the
    services of the manifest's service that it no longer lists (docs/manifest.md).
    """
    if ctx.invoked_subcommand is None:
        manifest_cli.deploy(ctx, **options)
    else:
        manifest_cli.refuse_with_subcommand(ctx, options)


@deploy.command("service")
@click.argument("name", shell_complete=complete_service)
@click.option("-f", "--from", "source", required=True, metavar="SOURCE|IMAGE", shell_complete=complete_source,
              help="Folder, single file, or git URL (https, ssh, git@host:repo, file://) to build with "
                   "--build-template; without one, a ready-made image to run as it is. SOURCE is taken for an "
                   "image only when it is not an existing path or a git URL and names a registry host (with "
                   "a '.' or ':', or localhost) or a tag or digest, e.g. gcr.io/team/app:1.0.")
@click.option("--build-template", "template", default=None, metavar="TEMPLATE", shell_complete=complete_template,
              help="Runtime build template (see `fnctl get buildtemplate`).")
@click.option("--image", "force_image", is_flag=True,
              help="SOURCE is a ready-made image (e.g. a bare `nginx`): run it with its own entrypoint, PORT set.")
@click.option("--build-argument", "build_args", multiple=True, metavar="KEY=VALUE",
              shell_complete=complete_build_argument,
              help="Template parameter, repeatable (e.g. HANDLER=handler.landingPage, DIRECTORY=sub); KEY- drops "
                   "one a redeploy would keep.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE",
              help="Environment variable, repeatable; KEY- drops one a redeploy would keep.")
@click.option("--reset", is_flag=True,
              help="Start from the template's defaults: a redeploy otherwise keeps the build arguments and "
                   "environment the service was given before (given ones win).")
@click.option("--revision", default=None, help="Git branch, tag or commit of a git SOURCE.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the service answers.")
@click.option("--timeout", default="10m", show_default=True, help="How long to wait for readiness (90s, 10m, 1h).")
@click.option("--ca-bundle", default=None, metavar="FILE",
              help="PEM bundle of the certificate authorities the build's downloads trust (default: "
                   "build.ca-bundle in the config file, else this machine's; `none` for the image's own).")
@click.option("--env-secret", "env_secrets", multiple=True, metavar="SECRET",
              help="[cluster] Secret whose keys become environment variables, repeatable.")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE", help="[cluster] Label of the Service.")
@click.option("--annotation", "annotations", multiple=True, metavar="KEY=VALUE",
              help="[cluster] Annotation of the Service's revision template.")
@_int_option("--concurrency", "[cluster] Hard limit of requests per instance (containerConcurrency).")
@click.option("--memory", default=None, metavar="QUANTITY",
              help="Memory of each instance, request and limit (256Mi, 1Gi); local default: local.memory in the "
                   "config file.")
@click.option("--cpu", default=None, metavar="QUANTITY",
              help="CPU of each instance, request and limit (500m, 1); local default: local.cpu in the config file.")
@_int_option("--min-scale", "[cluster] Fewest instances (autoscaling.knative.dev/min-scale).")
@_int_option("--max-scale", "[cluster] Most instances (autoscaling.knative.dev/max-scale).")
@_int_option("--concurrency-target", "[cluster] Requests per instance the autoscaler aims at.")
@click.option("--registry-host", default=None,
              help="[cluster] Registry kaniko pushes to (default: the config file's cluster.registry-host, "
                   "else knative.registry.svc.cluster.local).")
@click.option("--registry-secret", default=None, help="[cluster] docker-registry Secret for pushing.")
@click.option("--insecure-registry", is_flag=True, help="[cluster] The registry speaks plain HTTP.")
@click.option("--kaniko-image", default=None,
              help="[cluster] kaniko executor image to build with (default: cluster.kaniko-image in the config "
                   "file).")
@click.option("--build-namespace", default=None, metavar="NS",
              help="[cluster] Namespace of the build pods (default: the Service's), e.g. when the Service's "
                   "namespace enforces Pod Security 'restricted', which refuses kaniko (it runs as root).")
@click.option("--domain", default=None, metavar="HOST",
              help="[cluster] Custom domain mapped to the Service (a Knative DomainMapping), e.g. api.example.com.")
@click.option("--dry-run", is_flag=True,
              help="Print what the deploy would create (the cluster's objects; with --local the images and "
                   "container); change nothing.")
@click.option("-q", "--quiet", is_flag=True, help="Hide build logs (phases still show).")
@target_options
@output_option("url")
def deploy_service(name, source, template, force_image, build_args, env, reset, revision, wait, timeout,
                   ca_bundle, env_secrets, labels, annotations, concurrency, memory, cpu, min_scale, max_scale,
                   concurrency_target, registry_host, registry_secret, insecure_registry, kaniko_image,
                   build_namespace, domain, dry_run, quiet, local, cluster, context, namespace, output):
    """Build SOURCE with a runtime template and run it as service NAME, or run a ready-made IMAGE;
    print its URL.

    \b
      fnctl deploy service lambda-bash -f examples/bash-echo --build-template bash
      fnctl deploy service hello -f gcr.io/google-samples/hello-app:1.0
      fnctl deploy service hello -f https://github.com/me/fn.git --revision v2 \\
          --build-template node4 --build-argument HANDLER=handler.landingPage
    """
    source, template, image = validation.source_or_image(source, template, force_image)
    build_args, removed_build_args = validation.removals(build_args)
    env, removed_env = validation.removals(env)
    request = DeployRequest(
        name=validation.service_name(name), source=source, template=template, image=image,
        build_args=validation.key_values(build_args, "--build-argument"),
        env=validation.key_values(env, "--env"), reset=reset, removed_build_args=removed_build_args,
        removed_env=removed_env, revision=validation.revision(revision), wait=wait,
        timeout=validation.duration(timeout), ca_bundle=ca_bundle, env_secrets=list(env_secrets),
        labels=validation.key_values(labels, "--label"),
        annotations=validation.key_values(annotations, "--annotation"),
        concurrency=concurrency, min_scale=min_scale, max_scale=max_scale, concurrency_target=concurrency_target,
        memory=validation.memory(memory), cpu=validation.cpu(cpu),
        registry_host=registry_host, registry_secret=registry_secret, insecure_registry=insecure_registry,
        kaniko_image=kaniko_image,
        build_namespace=validation.namespace(build_namespace),
        domain=validation.domain(domain) if domain is not None else None)
    reporter = TerminalReporter(quiet=quiet)
    if dry_run:
        from fnctl.app import dry_run as plan

        objects = plan(request, reporter, local=local, cluster=cluster, context=context,
                       namespace=validation.namespace(namespace))
        if output == "yaml" and not local:
            dump({"apiVersion": "v1", "kind": "List", "items": objects}, "yaml")
        else:
            dump(objects, "yaml" if output == "yaml" else "json")
        return
    result = _target(reporter, local, cluster, context, namespace, announce=True).deploy(request, reporter)
    service = result.service
    if output == "url":
        click.echo(service.url or "")
    elif output == "human":
        if result.unchanged:
            click.echo(f"Service {service.name} unchanged, revision {service.revision}")
        click.echo(f"Service {service.name} URL: {service.url}")
        for url in service.domains:
            click.echo(f"Domain URL: {url}")
    else:
        dump(result.to_dict(), output)


@deploy.command("buildtemplate")
@click.option("-f", "--from", "path", required=True, metavar="FILE|URL",
              help="Template folder, template.yaml file, or https URL of one.")
@target_options
@output_option()
def deploy_buildtemplate(path, local, cluster, context, namespace, output):
    """Store a team's build template in the cluster namespace."""
    template = _cluster_templates("deploy buildtemplate", local, context, namespace).store(path)
    if output == "human":
        click.echo(f"Build template {template.name} stored in {template.origin}")
    else:
        dump(template.to_dict(), output)


@cli.group()
def get() -> None:
    """List services or build templates."""


@get.command("service")
@click.argument("name", required=False, shell_complete=complete_service)
@target_options
@output_option()
def get_service(name, local, cluster, context, namespace, output):
    """List services (or one) with their URL and readiness."""
    target = _target(TerminalReporter(), local, cluster, context, namespace)
    services = [target.describe(validation.service_name(name))] if name is not None else target.list()
    if output != "human":
        dump([s.to_dict() for s in services], output)
        return
    if not services:
        click.echo(f"No services on the {target.name} target.", err=True)
        return
    table(views.SERVICE_HEADERS, views.service_rows(services))


@get.command("buildtemplate")
@click.argument("name", required=False, shell_complete=complete_template)
@target_options
@output_option()
def get_buildtemplate(name, local, cluster, context, namespace, output):
    """List build templates: built-in ones and, with a cluster, the namespace's."""
    from fnctl import templates

    if name is not None:
        validation.template_name(name)
    known = dict(templates.builtin())
    if not local and (cluster or context or _has_cluster()):
        known.update(_cluster_templates("get buildtemplate", local, context, namespace).list())
    found = [templates.find(name, known)] if name is not None else list(known.values())
    if name is None and output == "human":
        table(views.TEMPLATE_HEADERS, views.template_rows(found))
        return
    mapped = views.image_mappings(found)
    if output == "human":
        click.echo("\n".join(views.template_lines(found[0], mapped[found[0].name])))
        return
    dump([views.with_mappings(t.to_dict(), mapped[t.name]) for t in found], output)




@cli.group()
def describe() -> None:
    """Show one service in detail."""


@describe.command("service")
@click.argument("name", shell_complete=complete_service)
@target_options
@output_option("url")
def describe_service(name, local, cluster, context, namespace, output):
    """Show service NAME; `-o url` prints only its URL."""
    target = _target(TerminalReporter(), local, cluster, context, namespace)
    service = target.describe(validation.service_name(name))
    if output == "url":
        click.echo(service.url or "")
    elif output == "human":
        for key, value in service.to_dict().items():
            if key == "env":
                value = ", ".join(f"{k}={v}" for k, v in value.items()) or None
            if key == "domains":
                value = ", ".join(value) or None
            if key == "ready":
                value = views.ready(value)
            if value not in (None, ""):
                click.echo(f"{key.capitalize() + ':':<11} {value}")
    else:
        dump(service.to_dict(), output)


@cli.group()
def logs() -> None:
    """Show what a service printed: the function's stdout and stderr."""


@logs.command("service")
@click.argument("name", shell_complete=complete_service)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@click.option("--tail", type=click.IntRange(min=0), default=None, help="Only the last N lines.")
@target_options
@output_option()
def logs_service(name, follow, tail, local, cluster, context, namespace, output):
    """Print service NAME's log (its serving revision's container); -o json: one object per line."""
    target = _target(TerminalReporter(), local, cluster, context, namespace)
    lines = target.logs(validation.service_name(name), follow, tail)
    try:
        for line in lines:
            log_line(name, line, output)
    except KeyboardInterrupt:
        if not follow:
            raise
        # Ctrl-C is how `-f` is meant to end: a normal, quiet exit.


@cli.group(invoke_without_command=True)
@manifest_cli.delete_options
@target_options
@click.pass_context
def delete(ctx, **options) -> None:
    """Delete a service or a cluster build template; with no subcommand, the services of
    serverless.yaml's functions (here, or -f FILE|URL) and those it no longer lists."""
    if ctx.invoked_subcommand is None:
        manifest_cli.delete(ctx, **options)
    else:
        manifest_cli.refuse_with_subcommand(ctx, options)


FORCE_HELP = "[cluster] Delete it even if fnctl did not make it (no app.kubernetes.io/managed-by=fnctl label)."


@delete.command("service")
@click.argument("name", shell_complete=complete_service)
@click.option("--force", is_flag=True, help=FORCE_HELP)
@target_options
@output_option()
def delete_service(name, force, local, cluster, context, namespace, output):
    """Delete service NAME with its revisions and images."""
    reporter = TerminalReporter()
    target = _target(reporter, local, cluster, context, namespace)
    removed = target.delete(validation.service_name(name), force=force, reporter=reporter)
    _deleted("service", name, target.name, output, removed)


@delete.command("buildtemplate")
@click.argument("name", shell_complete=complete_template)
@click.option("--force", is_flag=True, help=FORCE_HELP)
@target_options
@output_option()
def delete_buildtemplate(name, force, local, cluster, context, namespace, output):
    """Delete a build template stored in the cluster namespace."""
    validation.template_name(name)
    _cluster_templates("delete buildtemplate", local, context, namespace).delete(name, force=force)
    _deleted("buildtemplate", name, "cluster", output)


def _deleted(kind: str, name: str, target: str, output: str, removed: list[str] | None = None) -> None:
    """`removed`: what the target removed for it (containers, images, gateway, DomainMappings, ...)."""
    if output == "human":
        click.echo(f"{'Build template' if kind == 'buildtemplate' else 'Service'} {name} deleted"
                   + (f": removed {', '.join(removed)}" if removed else ""))
    else:
        dump({"deleted": [{"kind": kind, "name": name, **({"removed": removed} if removed else {})}],
              "target": target}, output)


def _has_cluster() -> bool:
    from fnctl.app import has_cluster_config

    return has_cluster_config()


def _cluster_templates(what: str, local: bool, context, namespace):
    from fnctl.errors import UsageError

    if local:
        raise UsageError(f"{what} works on a cluster; local build templates are the built-in ones",
                         "drop --local (team templates live in the cluster namespace)")
    from fnctl.app import cluster_templates

    return cluster_templates(context, validation.namespace(namespace))

