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
    default="fence",
    show_default=True,
    help="capture's fence (PostgreSQL and Redis writes stop, reads and uploads go on), or maintenance mode.",
)
@click.option(
    "--boot-seconds",
    type=click.FloatRange(0, 60),
    default=1.0,
    show_default=True,
    help="How long the app takes to boot after each release (every config change restarts it, like a dyno).",
)
@click.option(
    "--rollback",
    "roll_back",
    is_flag=True,
    help="After the switch, roll back while the app keeps writing (the follow back brings its new writes home); "
    "the report adds the rollback's window and the writes lost either way.",
)
@click.option(
    "--after-switch-seconds",
    type=click.FloatRange(0, 3600),
    default=5.0,
    show_default=True,
    help="With --rollback: how long the app writes to the new stores before the rollback.",
)
@click.option(
    "--runner",
    type=click.Choice(["local"]),
    help="Run the phases that reach the stores as tasks (local: child processes with the ECS task's command "
    "and environment), as `ferry run --runner ecs` does in the stack's network.",
)
@click.option(
    "--tasks", type=click.IntRange(1, 16), default=1, show_default=True,
    help="With --runner: how many tasks share the PostgreSQL copy.",
)  # fmt: skip
@click.option(
    "--databases", type=click.IntRange(1, 5), default=1, show_default=True,
    help="Consolidate this many databases of two apps into one target instance, one move (and freeze) each "
    "(ferry:moves); PostgreSQL only.",
)  # fmt: skip
@click.option(
    "--together", is_flag=True,
    help="With --databases: each app's moves switched together, in one freeze (together: in ferry:moves).",
)  # fmt: skip
@click.option(
    "--fail-move", metavar="NAME",
    help="With --databases: inject a failure into this move's verify; a second run finishes the rest.",
)  # fmt: skip
@json_option
@handle_errors
def rehearse(
    report_dir: Path,
    customers: int,
    jobs: int,
    keep: bool,
    capture: bool,
    freeze: str,
    boot_seconds: float,
    roll_back: bool,
    after_switch_seconds: float,
    runner: str | None,
    tasks: int,
    databases: int,
    together: bool,
    fail_move: str | None,
    as_json: bool,
) -> None:
    """Rehearse the migration locally: servers, data, a writing app, the whole runbook, a report."""
    from migration.rehearse.rehearsal import RehearsalOptions
    from migration.rehearse.rehearsal import rehearse as run_rehearsal

    if freeze == "fence" and not capture:
        raise click.UsageError(
            "--freeze fence (the default) needs --capture: the fence is capture's triggers refusing writes; "
            "with --no-capture give --freeze maintenance"
        )
    if tasks > 1 and runner is None:
        raise click.UsageError("--tasks shares the copy between tasks: it needs --runner local")
    if databases > 1 or fail_move or together:
        _rehearse_moves(report_dir, databases, customers, jobs, boot_seconds, fail_move, together, keep, as_json,
                        others=roll_back or runner is not None or not capture or freeze != "fence")  # fmt: skip
        return
    if roll_back and not capture:
        raise click.UsageError(
            "--rollback needs --capture: the follow back that loses nothing is capture on the target"
        )
    result = run_rehearsal(
        RehearsalOptions(
            report_dir=report_dir,
            customers=customers,
            jobs=jobs,
            keep=keep,
            capture=capture,
            fence=freeze == "fence",
            boot_seconds=boot_seconds,
            rollback_after_seconds=after_switch_seconds if roll_back else None,
            runner=runner,
            tasks=tasks,
        ),
        say=lambda line: click.echo(line, err=True),
    )
    if as_json:
        print_json(result.to_json())
    else:
        click.echo(
            f"write-unavailable window {result.write_unavailable_seconds:.2f} s, read-unavailable "
            f"{result.read_unavailable_seconds:.2f} s; "
            f"lost writes {result.lost_writes} of {result.acknowledged_writes}; "
            f"copy {'verified' if result.verified else 'NOT verified'}; report: {result.files['markdown']}"
        )
        if result.rollback is not None:
            back = result.rollback
            click.echo(
                f"rollback: write-unavailable window {back['write_unavailable_seconds']:.2f} s; lost writes "
                f"{back['lost_writes']}; {'verified' if back['verified'] else 'NOT verified'}"
            )
    back_ok = result.rollback is None or (result.rollback["verified"] and result.rollback["lost_writes"] == 0)
    sys.exit(0 if result.verified and result.lost_writes == 0 and back_ok else 1)


def _rehearse_moves(
    report_dir: Path, databases: int, customers: int, jobs: int, boot_seconds: float, fail_move: str | None,
    together: bool, keep: bool, as_json: bool, *, others: bool,
) -> None:  # fmt: skip
    from migration.rehearse.consolidate import rehearse_moves

    if databases < 2:
        raise click.UsageError("--fail-move and --together need --databases 2 or more")
    if others:
        raise click.UsageError("--databases rehearses capture with the fence, forward only: leave out --rollback, "
                               "--runner, --no-capture and --freeze maintenance")  # fmt: skip
    result = rehearse_moves(report_dir, databases, customers=customers, jobs=jobs, boot_seconds=boot_seconds,
                            fail_move=fail_move, keep=keep, together=together,
                            say=lambda line: click.echo(line, err=True))  # fmt: skip
    if as_json:
        print_json(result.to_json())
    else:
        for move in result.moves:
            click.echo(
                f"move {move['name']} ({move['app']} {move['config_var']} -> {move['database']}): lost writes "
                f"{move['lost_writes']} of {move['acknowledged_writes']}; writes stopped "
                f"{move['write_unavailable_seconds']:.2f} s at most; "
                f"{'verified' if move['verified'] else 'NOT verified'}"
            )
    sys.exit(0 if result.verified and result.lost_writes == 0 else 1)
