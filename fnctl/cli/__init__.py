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
from fnctl.errors import FnctlError, Interrupted

INTERNAL_ERROR = 70
OUTPUT_KEY = "fnctl.output"      # ctx.meta (shared by every nested context): the -o the command was given


class FnctlGroup(click.Group):
    """Turns every FnctlError into a message and an exit code, never a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FnctlError as e:
            report_error(e, ctx)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            report_error(Interrupted("interrupted"), ctx)
            ctx.exit(Interrupted.exit_code)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except Exception as e:   # a bug: say so plainly, keep the traceback for FNCTL_DEBUG
            if os.environ.get("FNCTL_DEBUG"):
                traceback.print_exc()
            from fnctl.redact import redact

            click.echo(f"Error: internal error in fnctl: {type(e).__name__}: {redact(str(e))}", err=True)
            click.echo("  Please report it with the command you ran; FNCTL_DEBUG=1 shows the traceback.",
                       err=True)
            ctx.exit(INTERNAL_ERROR)


def report_error(error: FnctlError, ctx: click.Context) -> None:
    from fnctl.redact import redact

    # Whatever a message quotes (a git URL, git's own stderr) is shown without URL credentials.
    body = {k: redact(v) if isinstance(v, str) else v for k, v in error.to_dict().items()}
    if ctx.meta.get(OUTPUT_KEY) == "json":
        import json

        click.echo(json.dumps(body, indent=2))
    click.echo(f"Error: {body['message']}", err=True)
    if body["details"]:
        click.echo("\n".join("  | " + line for line in body["details"].splitlines()), err=True)
    if body["hint"]:
        click.echo(f"  Hint: {body['hint']}", err=True)


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
