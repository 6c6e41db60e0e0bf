"""Shell completion: `fnctl completion SHELL` prints click's script for bash, zsh or fish; the
callbacks below complete service names (from the target the command would use), build template
names and a template's parameters after --build-argument.

The shell asks through click's protocol, e.g.
`_FNCTL_COMPLETE=bash_complete COMP_WORDS="fnctl get service " COMP_CWORD=3 fnctl`.
A completion never prints an error: whatever cannot be asked (no engine, no cluster) completes nothing.
"""

from __future__ import annotations

import click
from click.shell_completion import CompletionItem, get_completion_class

from fnctl.cli import cli

PROG = "fnctl"
COMPLETE_VAR = "_FNCTL_COMPLETE"        # click's default for prog_name fnctl


def _target_args(ctx: click.Context) -> dict:
    p = ctx.params
    return {"local": bool(p.get("local")), "cluster": bool(p.get("cluster")), "context": p.get("context"),
            "namespace": p.get("namespace")}


def complete_service(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from fnctl.app import choose_target
    from fnctl.pipeline import Silent  # a note on stderr would garble the shell's line

    try:
        services = choose_target(Silent(), **_target_args(ctx)).list()
    except Exception:        # noqa: BLE001 - no engine, no cluster, no rights: nothing to offer
        return []
    return [CompletionItem(s.name, help=s.url or "") for s in services if s.name.startswith(incomplete)]


def complete_source(_ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """-f takes a folder or file here (the shell completes paths); a URL is typed out."""
    return [CompletionItem(incomplete, type="file")]


def _templates(ctx: click.Context) -> dict:
    """The templates a deploy with these options could use: built-in, and the namespace's (best effort)."""
    from fnctl import templates

    known = dict(templates.builtin())
    args = _target_args(ctx)
    try:
        from fnctl import app

        if not args["local"] and (args["cluster"] or args["context"] or app.has_cluster_config()):
            known.update(app.cluster_templates(args["context"], args["namespace"]).list())
    except Exception:        # noqa: BLE001 - the cluster's templates are a bonus here
        pass
    return known


def complete_template(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        known = _templates(ctx)
    except Exception:        # noqa: BLE001 - a broken templates folder: nothing to offer
        return []
    return [CompletionItem(name, help=t.runtime) for name, t in sorted(known.items()) if name.startswith(incomplete)]


def complete_build_argument(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """KEY= for each parameter of --build-template (of every template while none is given yet)."""
    if "=" in incomplete:
        return []
    try:
        known = _templates(ctx)
    except Exception:        # noqa: BLE001
        return []
    chosen = ctx.params.get("template")
    if chosen:
        from fnctl import templates

        try:
            candidates = [templates.find(chosen, known)]
        except Exception:    # noqa: BLE001 - an unknown template: nothing to offer
            return []
    else:
        candidates = list(known.values())
    given = {arg.split("=", 1)[0] for arg in ctx.params.get("build_args") or ()}
    seen: dict[str, str] = {}
    for template in candidates:
        for p in template.parameters:
            # a `machine: ca-bundle` parameter comes from --ca-bundle, never --build-argument
            if p.name not in given and p.name.startswith(incomplete.upper()) and p.machine != "ca-bundle":
                seen.setdefault(p.name, p.description)
    return [CompletionItem(f"{name}=", help=help_text) for name, help_text in seen.items()]


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
      source <(fnctl completion bash)                                  # bash, now; in ~/.bashrc for good
      fnctl completion zsh > "${fpath[1]}/_fnctl"                      # zsh
      fnctl completion fish > ~/.config/fish/completions/fnctl.fish    # fish
    """
    script = get_completion_class(shell)(cli, {}, PROG, COMPLETE_VAR).source()
    click.echo(script)
