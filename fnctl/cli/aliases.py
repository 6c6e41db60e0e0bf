"""The nouns of fnctl's verbs as kubectl users type them: `get services`, `get svc`, `get ksvc`."""

from __future__ import annotations

import click

# Each command's other names: plurals, kubectl's short names (`svc`; `ksvc` is Knative's), and
# the `tm` plural.
ALIASES = {
    "service": ("services", "svc", "ksvc"),
    "buildtemplate": ("buildtemplates",),
}
CANONICAL = {alias: name for name, aliases in ALIASES.items() for alias in aliases}


class ResourceGroup(click.Group):
    """A verb (get, describe, ...) whose commands answer to their aliases too; help lists the
    aliases beside the command instead of as commands of their own."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, CANONICAL.get(cmd_name, cmd_name))

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd is not None else name), cmd, rest

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        named = []
        for name in self.list_commands(ctx):
            cmd = self.commands[name]
            if not cmd.hidden:
                aliases = [a for a in ALIASES.get(name, ()) if a not in self.commands]
                named.append((f"{name} ({', '.join(aliases)})" if aliases else name, cmd))
        if named:
            limit = formatter.width - 6 - max(len(label) for label, _ in named)
            rows = [(label, cmd.get_short_help_str(limit)) for label, cmd in named]
            with formatter.section("Commands"):
                formatter.write_dl(rows)
