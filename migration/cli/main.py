"""``ferry`` — the root command and its groups."""

from __future__ import annotations

import click

from migration.cli.pg import pg
from migration.cli.redis import redis
from migration.cli.s3 import s3


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="ferry")
def main(debug: bool) -> None:
    """Move an application's data stores onto AWS, verified and reversible."""


main.add_command(pg)
main.add_command(redis)
main.add_command(s3)
