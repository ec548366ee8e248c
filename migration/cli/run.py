"""``ferry run``, ``ferry rollback``, ``ferry record`` and ``ferry status``: the runbook on one stack."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from migration.cli.common import handle_errors, json_option, print_json
from migration.errors import UsageError
from migration.runbook import RunReport, RunSettings
from migration.runbook import status as run_status
from migration.runbook.moves import MovesReport, finish_moves, for_move, rollback_move, run_moves
from migration.runbook.run import PHASE_NAMES
from migration.runner.choose import RUNNERS

F = TypeVar("F", bound=Callable[..., Any])


def _stack_options(fn: F) -> F:
    options = [
        click.option("--stack", required=True, help="The environment: its config is Pulumi.<STACK>.yaml."),
        click.option(
            "--root",
            type=click.Path(file_okay=False, path_type=Path),
            default=".",
            envvar="FERRY_PROJECT_DIR",
            show_default=True,
            help="The Pulumi project directory.",
        ),
        click.option(
            "--state-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Where the run's state, lock and records live [default: ROOT/.ferry/STACK].",
        ),
        click.option(
            "--platform",
            default="heroku",
            envvar="FERRY_PLATFORM",
            show_default=True,
            help="heroku (HEROKU_API_KEY, HEROKU_API_URL) or local:DIR (a rehearsal's env file).",
        ),
        click.option(
            "--target-url",
            envvar="FERRY_TARGET_URL",
            metavar="URL",
            help="PostgreSQL target built already (or FERRY_TARGET_URL): no Pulumi needed.",
        ),
        click.option(
            "--target-app-url",
            envvar="FERRY_TARGET_APP_URL",
            metavar="URL",
            help="What DATABASE_URL becomes, when the app uses another role than the copy.",
        ),
        click.option(
            "--target-redis-url", envvar="FERRY_TARGET_REDIS_URL", metavar="URL", help="Redis target built already."
        ),
        click.option(
            "--tls-skip-verify",
            is_flag=True,
            help="Accept the source Redis's self-signed certificate (Heroku Redis); the target's is still verified.",
        ),
        click.option("--jobs", type=click.IntRange(1), help="Parallel copy streams [default: migration.jobs]."),
        click.option(
            "--move",
            metavar="NAME",
            help="With ferry:moves: this move only (its own freeze, switch, state and rollback).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


# Pulumi's own rule for stack names: the name becomes a file name and a directory, never a path.
_STACK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _runner_option(help_text: str) -> Callable[[F], F]:
    """``--runner local|ecs``: where the work that reaches the stores runs (each command says what it does)."""
    return click.option("--runner", type=click.Choice(RUNNERS), help=help_text)


def _settings(stack: str, root: Path, state_dir: Path | None, **given: Any) -> RunSettings:
    if not _STACK_NAME.match(stack) or ".." in stack:
        raise UsageError(f"--stack {stack!r} is not a stack name (letters, digits, '-', '_', '.'; no path)")
    if given.get("move") == "":
        raise UsageError("--move needs a move's name (ferry:moves); leave it out to run every move")
    root = root.resolve()
    return RunSettings(
        stack=stack,
        root=root,
        state_dir=(state_dir or root / ".ferry" / stack).resolve(),
        platform=given["platform"],
        target_url=given["target_url"],
        target_app_url=given["target_app_url"],
        target_redis_url=given["target_redis_url"],
        tls_skip_verify=given["tls_skip_verify"],
        jobs=given["jobs"],
        yes=given.get("yes", False),
        smoke_urls=tuple(given.get("smoke_url", ())),
        verify_mode=given.get("verify_mode", "full"),
        runner=given.get("runner"),
        tasks=given.get("tasks", 1),
        move=given.get("move"),
    )


def _say(line: str) -> None:
    click.echo(line, err=True)


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise UsageError(f"{question} No terminal to ask on: pass --yes to run without questions")
    return click.confirm(question, default=False, err=True)


def _show(report: RunReport | MovesReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
        return
    for name, one in report.moves if isinstance(report, MovesReport) else [(None, report)]:
        if name is not None:
            click.echo(f"move {name}" + (" (rolled back)" if one.rolled_back else ""))
        for phase in one.phases:
            click.echo(f"{phase.name:<11} {phase.status:<8} {phase.seconds:8.1f} s  {phase.detail}")


@click.command()
@_stack_options
@click.option("--from", "start", type=click.Choice(PHASE_NAMES), help="Start at this phase (again, if done).")
@click.option("--until", type=click.Choice(PHASE_NAMES), help="Stop after this phase.")
@click.option("--yes", is_flag=True, help="Do not ask before provision, alias, freeze and switch (CI).")
@click.option("--smoke-url", multiple=True, metavar="URL", help="Also check this URL after unfreeze.")
@click.option("--verify-mode", type=click.Choice(["quick", "full"]), default="full", show_default=True)
@_runner_option(
    "Run the phases that reach the stores as tasks: ecs (Fargate, in the stack's private subnets: "
    "`ferry:runner`) or local (child processes, the same command and environment)."
)
@click.option(
    "--tasks", type=click.IntRange(1, 64), default=1, show_default=True,
    help="With --runner: how many tasks share the PostgreSQL copy.",
)  # fmt: skip
@json_option
@handle_errors
def run(
    stack: str, root: Path, state_dir: Path | None, start: str | None, until: str | None, as_json: bool, **given: Any
) -> None:
    """Run the migration runbook for STACK, from its first unfinished phase.

    preflight → provision → copy → alias → catch-up → freeze → final-sync → verify → switch → unfreeze →
    after-switch → smoke → record → cleanup
    """
    if given.get("tasks", 1) > 1 and not given.get("runner"):
        raise UsageError("--tasks shares the copy between tasks: it needs --runner local or --runner ecs")
    settings = _settings(stack, root, state_dir, **given)
    report = run_moves(settings, say=_say, confirm=_confirm, start=start, until=until)
    _show(report, as_json)


@click.command()
@_stack_options
@json_option
@_runner_option(
    "Do the rollback's work on the stores as a task, as `ferry run --runner` does (ecs: through the task "
    "that keeps the follow back)."
)
@click.option(
    "--discard-writes-since-switch",
    is_flag=True,
    help="After the switch: go back although what the app wrote to the new stores since stays there.",
)
@handle_errors
def rollback(
    stack: str, root: Path, state_dir: Path | None, as_json: bool, discard_writes_since_switch: bool, **given: Any
) -> None:
    """Put STACK's app back on the old stores and unfreeze it.

    Before the switch: the old database through its rollback alias, as it was at the freeze. After it, with
    the follow back (migration.reverse, on with capture): the cutover in reverse — the new stores frozen,
    followed back to their last write, verified, the app switched back — losing no write. Without a follow
    back (off, stopped, or ended by `ferry finish`) the writes since the switch would stay behind: refused
    without --discard-writes-since-switch (it says what it would leave).
    """
    settings = _settings(stack, root, state_dir, **given)
    report = rollback_move(settings, say=_say, discard=discard_writes_since_switch)
    _show(report, as_json)


@click.command()
@_stack_options
@json_option
@_runner_option(
    "ecs: asks the task that keeps the follow back (or a task of its own) to finish, where its workers are."
)
@handle_errors
def finish(stack: str, root: Path, state_dir: Path | None, as_json: bool, **given: Any) -> None:
    """Make STACK's move final: stop following the new stores back and take capture off both sides.

    The point of no return: a rollback afterwards would leave what the app wrote since behind."""
    report = finish_moves(_settings(stack, root, state_dir, **given), say=_say)
    _show(report, as_json)


@click.command()
@_stack_options
@json_option
@handle_errors
def record(stack: str, root: Path, state_dir: Path | None, as_json: bool, **given: Any) -> None:
    """Write STACK's endpoints, phase timings and a stack export to the state directory."""
    settings = _settings(stack, root, state_dir, yes=True, **given)
    report = run_moves(settings, say=_say, confirm=lambda _q: True, start="record", until="record")
    _show(report, as_json)


@click.command()
@_stack_options
@json_option
@_runner_option(
    "The run's runner: ecs reads the state from the stack's bucket and names the task keeping the follow back."
)
@handle_errors
def status(stack: str, root: Path, state_dir: Path | None, as_json: bool, **given: Any) -> None:
    """Where STACK's run stands: its phases, the app frozen or switched, each store's background copy and
    the writes its target took since the switch. Changes nothing."""
    settings = _settings(stack, root, state_dir, **given)
    from migration.stackconfig import load_stack_file

    config = load_stack_file(settings.root, settings.stack)
    names = ([settings.move] if settings.move else config.move_names()) if config.moves else [None]
    reports = [run_status(for_move(settings, config, name) if name else settings) for name in names]
    if as_json:
        if config.moves:
            print_json(
                {"stack": stack, "moves": [{"name": n, **r.to_json()} for n, r in zip(names, reports, strict=True)]}
            )
        else:
            print_json(reports[0].to_json())
        return
    for name, report in zip(names, reports, strict=True):
        if name is not None:
            click.echo(f"move {name}")
        for line in report.lines():
            click.echo(line)
