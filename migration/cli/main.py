"""``ferry`` — the root command; each group is imported only when it runs."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import Any

import click

from migration.cli.common import end_on_closed_stdout, flush_stdout, stdout_closed
from migration.redact import redact

# A URL's password, or a libpq keyword string's: never echoed back, even by the argument parser.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.I)
_KEYWORD_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.I)


def hide_passwords(text: str) -> str:
    """*text* with every password in a connection URL or keyword string masked."""
    return redact(_KEYWORD_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text)))


_GROUPS = {
    "pg": "migration.cli.pg",
    "redis": "migration.cli.redis",
    "s3": "migration.cli.s3",
    "run": "migration.cli.run",
    "rollback": "migration.cli.run",
    "finish": "migration.cli.run",
    "record": "migration.cli.run",
    "status": "migration.cli.run",
    "rehearse": "migration.cli.rehearse",
    "secrets": "migration.cli.secrets",
}


class _LazyGroup(click.Group):
    """Subcommand groups load on demand: startup stays small for every command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_GROUPS)

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        """Click's own error handling, with passwords masked and Ctrl-C exiting 130 wherever it lands;
        a closed stdout (``| head``) ends any command quietly with 141, as SIGPIPE ends a Unix tool."""
        try:
            self._main(args, prog_name, **extra)
        except SystemExit:
            flush_stdout()  # what is still buffered fails here, not in Python's exit handler
            raise

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        # ``ferry --help`` writes while the context is made (click would exit 1 on a closed pipe).
        try:
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:
            end_on_closed_stdout()

    def invoke(self, ctx: click.Context) -> Any:
        # Every subcommand (and its --help) runs inside: a closed stdout ends here, before click's handler.
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            if not stdout_closed():
                raise
            end_on_closed_stdout()

    def _main(self, args: Sequence[str] | None, prog_name: str | None, **extra: Any) -> Any:
        try:
            result = super().main(args, prog_name, standalone_mode=False, **extra)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("ferry: interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            # One line, as every other error of ferry's: what is wrong, and where the help is.
            hint, where = "", exc.ctx if isinstance(exc, click.UsageError) else None
            if where is not None and where.command.get_help_option(where) is not None:
                hint = f" (`{where.command_path} {where.help_option_names[0]}` for help)"
            message = " ".join(hide_passwords(exc.format_message()).split())
            click.echo(f"ferry: error: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(result if isinstance(result, int) else 0)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _GROUPS:
            return None
        command: Any = getattr(import_module(_GROUPS[cmd_name]), cmd_name)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="ferry")
def main(debug: bool) -> None:
    """Move an application's data stores onto AWS, verified and reversible."""
