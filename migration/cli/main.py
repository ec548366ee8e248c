"""``ferry`` — the root command; each group is imported only when it runs."""

from __future__ import annotations

from importlib import import_module
from typing import Any

import click

_GROUPS = {
    "pg": "migration.cli.pg",
    "redis": "migration.cli.redis",
    "s3": "migration.cli.s3",
    "run": "migration.cli.run",
    "rollback": "migration.cli.run",
    "record": "migration.cli.run",
    "rehearse": "migration.cli.rehearse",
}


class _LazyGroup(click.Group):
    """Subcommand groups load on demand: startup stays small for every command."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_GROUPS)

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
