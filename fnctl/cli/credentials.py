"""`fnctl set registry-auth`: registry credentials for the cluster target's builds and pulls."""

from __future__ import annotations

import click

from fnctl import validation
from fnctl.cli import cli
from fnctl.cli.commands import output_option, target_options
from fnctl.cli.output import dump
from fnctl.errors import UsageError

LOCAL_HINT = ("on the local target, builds and pulls use your own Docker configuration and credential helpers: "
              "run `docker login {registry}` (fnctl reads ~/.docker/config.json as docker does)")


@cli.group("set")
def set_() -> None:
    """Store settings in the cluster namespace (registry credentials)."""


@set_.command("registry-auth")
@click.argument("name")
@click.option("--registry", required=True, metavar="HOST", help="Registry host, e.g. registry.example.com:5000.")
@click.option("--username", required=True, metavar="USER", help="User name at the registry.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password (or token) from stdin; it never goes on the command line.")
@target_options
@output_option()
def set_registry_auth(name, registry, username, password_stdin, local, cluster, context, namespace, output):
    """Create or update NAME, a kubernetes.io/dockerconfigjson Secret with credentials for HOST.

    kaniko pushes with it and Knative pulls with it: pass `--registry-secret NAME` to deploy, or
    set `cluster.registry-secret: NAME` in the config file.

    \b
      printf %s "$TOKEN" | fnctl set registry-auth regcred --registry registry.example.com \\
          --username ci --password-stdin
    """
    from fnctl import app

    validation.secret_name(name)
    if local or not (cluster or context or app.has_cluster_config()):
        raise UsageError("set registry-auth stores a Secret in a cluster namespace; there is no cluster here"
                         if not local else "set registry-auth works on a cluster", LOCAL_HINT.format(registry=registry))
    password = _password(password_stdin)
    from fnctl import registryauth
    from fnctl.cluster import Cluster

    stored = registryauth.store(Cluster(context, validation.namespace(namespace)), name, registry, username,
                                password)
    if output == "human":
        action = "created" if stored.created else "updated"
        click.echo(f"Secret {stored.name} {action} in namespace {stored.namespace}: credentials of {stored.username} "
                   f"for {stored.registry}")
        click.echo(f"  Use it with --registry-secret {stored.name}, or cluster.registry-secret in the config file")
    else:
        dump(stored.to_dict(), output)


def _password(from_stdin: bool) -> str:
    stdin = click.get_text_stream("stdin")
    if from_stdin:
        return stdin.read().rstrip("\r\n")
    if stdin.isatty():
        return click.prompt("Password", hide_input=True, err=True)
    raise UsageError("no password: give it on stdin with --password-stdin",
                     "pipe it in: `printf %s \"$TOKEN\" | fnctl set registry-auth NAME ... --password-stdin` "
                     "(a password is never taken as an argument: others could read it in the process list)")
