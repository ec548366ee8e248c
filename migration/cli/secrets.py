"""``ferry secrets set``: the runner's secrets only a person knows, into the stack's Secrets Manager."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import click

from migration.cli.common import handle_errors, json_option, print_json
from migration.errors import UsageError

# Pulumi's rule for stack names (as ``ferry run`` checks it): a file name, never a path.
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@click.group()
def secrets() -> None:
    """The secrets ferry's runner task reads (ferry:runner): set those only you know."""


@secrets.command("set")
@click.option("--stack", required=True, help="The environment: its config is Pulumi.<STACK>.yaml.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    envvar="FERRY_PROJECT_DIR",
    show_default=True,
    help="The Pulumi project directory.",
)
@click.option(
    "--from-env",
    is_flag=True,
    help="Read each value from the environment variable of its name (HEROKU_API_KEY, …) instead of asking.",
)
@json_option
@handle_errors
def set_(stack: str, root: Path, from_env: bool, as_json: bool) -> None:
    """Set the stack's secrets a person fills: the Heroku API key, and the old buckets' key pair when
    migration.s3 is on. `pulumi up` creates them (and fills the rest); values are asked for with hidden input,
    or read with --from-env, and never printed.

    FERRY_AWS_ENDPOINT_URL points at another Secrets Manager endpoint (tests).
    """
    from migration.runner.aws import endpoint_from_env
    from migration.runner.secrets import person_secrets, set_secrets
    from migration.stackconfig import load_stack_file

    if not _STACK_NAME.match(stack) or ".." in stack:
        raise UsageError(f"--stack {stack!r} is not a stack name (letters, digits, '-', '_', '.'; no path)")
    config = load_stack_file(root.resolve(), stack)
    wanted = person_secrets(config)
    values: dict[str, str] = {}
    if from_env:
        for item in wanted:
            if not os.environ.get(item.env):
                raise UsageError(f"--from-env: {item.env} is not set ({item.secret.about})")
            values[item.env] = os.environ[item.env]
    elif not sys.stdin.isatty():
        raise UsageError("stdin is not a terminal: give --from-env to read the values from the environment")
    else:
        for item in wanted:
            values[item.env] = click.prompt(f"{item.env} ({item.secret.about})", hide_input=True, err=True)
    written = set_secrets(config, values, endpoint_url=endpoint_from_env())
    if as_json:
        print_json({"secrets": [{"name": item.name, "env": item.env, "status": "set"} for item in written]})
        return
    for item in written:
        click.echo(f"{item.name} ({item.env}): set")
