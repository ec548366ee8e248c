"""``ferry rehearse``: the whole runbook on local servers, with a report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from migration.cli.common import handle_errors, json_option, print_json


@click.command()
@click.option(
    "--report-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="rehearsal-report",
    show_default=True,
    help="Where rehearsal.md, rehearsal.json and timeline.svg are written.",
)
@click.option("--customers", type=click.IntRange(100), default=20_000, show_default=True, help="Shop size.")
@click.option("--jobs", type=click.IntRange(1), default=2, show_default=True, help="Parallel copy streams.")
@click.option("--keep", is_flag=True, help="Keep the work directory (servers' data, app log, run state).")
@click.option(
    "--capture/--no-capture",
    default=True,
    show_default=True,
    help="PostgreSQL followed by change capture (the freeze only drains), or copied inside the freeze.",
)
@click.option(
    "--freeze",
    type=click.Choice(["maintenance", "fence"]),
    default="maintenance",
    show_default=True,
    help="maintenance mode, or capture's fence (reads go on; S3 is then not moved: only maintenance stops its writes).",
)
@json_option
@handle_errors
def rehearse(
    report_dir: Path, customers: int, jobs: int, keep: bool, capture: bool, freeze: str, as_json: bool
) -> None:
    """Rehearse the migration locally: servers, data, a writing app, the whole runbook, a report."""
    from migration.rehearse.rehearsal import RehearsalOptions
    from migration.rehearse.rehearsal import rehearse as run_rehearsal

    if freeze == "fence" and not capture:
        raise click.UsageError("--freeze fence needs --capture (the fence is capture's triggers refusing writes)")
    result = run_rehearsal(
        RehearsalOptions(
            report_dir=report_dir, customers=customers, jobs=jobs, keep=keep, capture=capture, fence=freeze == "fence"
        ),
        say=lambda line: click.echo(line, err=True),
    )
    if as_json:
        print_json(result.to_json())
    else:
        click.echo(
            f"write-unavailable window {result.write_unavailable_seconds:.2f} s; "
            f"lost writes {result.lost_writes} of {result.acknowledged_writes}; "
            f"copy {'verified' if result.verified else 'NOT verified'}; report: {result.files['markdown']}"
        )
    sys.exit(0 if result.verified and result.lost_writes == 0 and result.lost_cache_writes == 0 else 1)
