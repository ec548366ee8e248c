"""A stack of several moves (``ferry:moves``): each run as a stack of that move alone, one after the other.

Every move has its own state directory (``<state-dir>/moves/<name>``), freeze, final sync, verify, alias and
switch; the next begins once the one before has run to its end. A move that fails inside its freeze is rolled
back at once (its app writes to its old database again) and the run stops there: the moves before it stay
switched, and the next ``ferry run`` starts the failed one again (its copy anew: the target holds only what an
earlier attempt of ferry's put there) and goes on with the rest.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from migration.errors import FerryError, RunbookError, UsageError
from migration.moveconfig import groups_of
from migration.runbook.context import RunSettings
from migration.runbook.lock import RunLock
from migration.runbook.run import RunReport, finish, open_context, rollback, run
from migration.runbook.state import RunState
from migration.runbook.stores import moved_stores
from migration.stackconfig import StackConfig, load_stack_file

__all__ = ["MovesReport", "finish_moves", "for_move", "run_moves"]


@dataclass
class MovesReport:
    """Every move's report, in the order they run; ``to_json()`` is the ``--json`` summary."""

    stack: str
    moves: list[tuple[str, RunReport]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"stack": self.stack, "moves": [{"name": name, **report.to_json()} for name, report in self.moves]}


def _with_database(url: str | None, database: str | None, option: str) -> str | None:
    """*url* with its database replaced by the move's (targets given as URLs: one server, a database per move)."""
    if url is None or database is None:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise UsageError(f"{option} must be a postgres:// URL when the stack lists moves", side="target")
    # libpq takes a dbname= parameter over the path: it names the move's database too, or every move would
    # go into the one the URL names.
    query = urlencode([(key, database if key == "dbname" else value)
                       for key, value in parse_qsl(parts.query, keep_blank_values=True)])  # fmt: skip
    # Built by hand: urlunsplit drops the "//" of a URL without a host (postgresql:///db?host=/socket).
    return f"{parts.scheme}://{parts.netloc}/{database}" + (f"?{query}" if query else "")


def for_move(settings: RunSettings, config: StackConfig, name: str) -> RunSettings:
    """The settings of move *name*: its own state directory, its target database on the given server.

    :raises ConfigError: the stack has no move *name*.
    """
    view = config.for_move(name)
    database = view.database.databases[0] if view.migration.postgres else None
    if settings.runner == "ecs" and database not in (None, config.database.databases[0]):
        # The task reads its target from the stack's secret of the first database alone.
        raise UsageError(
            f"move {name} goes into database {database}: --runner ecs moves only into the first of "
            f"database.databases ({config.database.databases[0]}) for now; run this move with --runner local "
            "from inside the network, or without a runner",
            side="target",
        )
    names = config.move_names()
    return replace(
        settings,
        move=name,
        last_move=names[-1] == name,
        state_dir=settings.state_dir / "moves" / name,
        target_url=_with_database(settings.target_url, database, "the target URL"),
        target_app_url=_with_database(settings.target_app_url, database, "the target app URL"),
    )


def _stack(settings: RunSettings) -> StackConfig:
    return load_stack_file(settings.root, settings.stack)


def _start_again(settings: RunSettings, say: Callable[[str], None]) -> None:
    """A move rolled back before its switch begins anew: its state kept aside, every store copied again. One
    whose rollback was interrupted (a kill) has it finished first: it was the run's own, after a failure."""
    state = RunState.load(settings.state_file, settings.stack)
    if "rollback" in state.phases and not state.rolled_back and not state.done("switch"):
        say(f"[move {settings.move}] its rollback was interrupted: finished first")
        rollback(settings, say=say)
        state = RunState.load(settings.state_file, settings.stack)
    if not state.rolled_back:
        return
    # With a stack, a switch that began may have detached: its rollback then declared the add-on attached again
    # (``rolled_back``), which the next run's alias step would undeclare, detaching it from the app.
    if state.done("switch") or (settings.uses_stack and "switch" in state.phases):
        raise RunbookError(
            f"move {settings.move} was rolled back after its switch began: its cutover is rolled_back; move "
            f"{settings.state_file} away and set ferry:moves' cutover of {settings.move} back by hand to run it again"
        )
    ctx = open_context(settings, say, lambda _question: True)
    try:
        for store, store_run in moved_stores(ctx):
            store.forget_copy(store_run)  # the target holds an earlier attempt's copy: the next one starts over
        fresh = RunState(stack=state.stack, stores=ctx.state.stores)
    finally:
        ctx.close()
    kept = settings.state_dir / f"rolled-back-{int(time.time())}.json"
    # Kept aside first, then replaced in one step: killed between the two, the next run starts again from here.
    shutil.copyfile(settings.state_file, kept)
    fresh.save(settings.state_file)
    say(f"[move {settings.move}] rolled back earlier: starts again (its last state kept in {kept.name})")


def _roll_back_failed(settings: RunSettings, say: Callable[[str], None]) -> str:
    """The failed move's app put back on its old stores if it was frozen and not switched (``""``: it was not)."""
    state = RunState.load(settings.state_file, settings.stack)
    # A switch that failed may have detached already: the rollback attaches it back (rollback_cutover).
    if state.rolled_back or "freeze" not in state.phases or state.done("switch"):
        return ""
    try:
        rollback(settings, say=say)
    except FerryError as exc:
        return (
            f"its rollback failed too: {exc.message} (`ferry rollback --stack {settings.stack} --move {settings.move}`)"
        )
    return f"move {settings.move} was rolled back (its app writes to its old stores again)"


def run_moves(
    settings: RunSettings,
    *,
    say: Callable[[str], None],
    confirm: Callable[[str], bool],
    start: str | None = None,
    until: str | None = None,
) -> RunReport | MovesReport:
    """``ferry run``: the stack's one move, or each of its moves in turn (only ``settings.move``, if given).

    :raises FerryError: the move that failed, what was done about it, and which moves are done.
    """
    config = _stack(settings)
    if not config.moves:
        if settings.move is not None:
            config.for_move(settings.move)  # raises: the stack lists no moves
        return run(settings, say=say, confirm=confirm, start=start, until=until)
    groups = groups_of(config)
    if settings.move is not None:
        config.for_move(settings.move)  # raises: no such move
        groups = [group for group in groups if settings.move in group]  # a move switched with others: its group
    names = [name for group in groups for name in group]
    if (start or until) and len(names) > 1 and not start == until == "record":  # a record of each changes nothing
        raise UsageError("--from and --until choose phases of one move: name it with --move")
    if settings.runner and any(len(group) > 1 for group in groups):
        # A task holds its live copies from the copy to the unfreeze: one freeze of several would need them all.
        raise UsageError("moves switched together (together:) run without --runner for now")
    report = MovesReport(settings.stack)
    with RunLock(settings.state_dir / "lock", settings.stack):  # no other run of the stack's moves meanwhile
        for group in groups:
            moves = [for_move(settings, config, name) for name in group]
            for move in moves:
                move.state_dir.mkdir(parents=True, exist_ok=True)
                _start_again(move, say)
            say(f"[move {' + '.join(group)}] {names.index(group[0]) + 1} of {len(names)}")
            try:
                if len(moves) == 1:
                    report.moves.append((group[0], run(moves[0], say=say, confirm=confirm, start=start, until=until)))
                else:
                    report.moves += zip(group, _run_together(moves, say, confirm), strict=True)
            except FerryError as exc:
                done = [n for n, r in report.moves]
                did = "; ".join(d for move in moves if (d := _roll_back_failed(move, say)))
                # Rolled back: the phase's hint (resume it, or roll it back) no longer applies.
                message = exc.message.rsplit(" (`", 1)[0] if did else exc.message
                exc.message = (
                    f"move {' + '.join(group)}: {message}"
                    + (f"; {did}" if did else "")
                    + (f"; moves done: {', '.join(done)}" if done else "")
                    + f"; `ferry run --stack {settings.stack}` goes on with move {group[0]}"
                )
                raise
    return report


#: A freeze shared by moves switched together: each phase of it for every move, then the next.
_SHARED_FREEZE = ("freeze", "final-sync", "verify", "switch", "unfreeze")


def _run_together(
    moves: list[RunSettings], say: Callable[[str], None], confirm: Callable[[str], bool]
) -> list[RunReport]:
    """Moves of one app switched in one freeze: each copied and caught up, then every one frozen, synced and
    verified before any is switched (a failure rolls them all back), then each run to its end."""
    for move in moves:
        run(move, say=say, confirm=confirm, until="catch-up")
    for phase in _SHARED_FREEZE:
        for move in moves:
            run(move, say=say, confirm=confirm, until=phase)
    return [run(move, say=say, confirm=confirm) for move in moves]


def rollback_move(settings: RunSettings, *, say: Callable[[str], None], discard: bool = False) -> RunReport:
    """``ferry rollback``: the stack's one move, or ``--move``'s (a stack of several needs it)."""
    config = _stack(settings)
    if config.moves:
        if settings.move is None:
            raise UsageError(f"stack {settings.stack} lists moves: name the one to roll back with --move")
        settings = for_move(settings, config, settings.move)
    elif settings.move is not None:
        config.for_move(settings.move)  # raises: the stack lists no moves
    return rollback(settings, say=say, discard_writes_since_switch=discard)


def finish_moves(settings: RunSettings, *, say: Callable[[str], None]) -> RunReport | MovesReport:
    """``ferry finish``: the stack's one move, ``--move``'s, or every switched move of the stack's."""
    config = _stack(settings)
    if not config.moves:
        if settings.move is not None:
            config.for_move(settings.move)
        return finish(settings, say=say)
    report = MovesReport(settings.stack)
    for name in [settings.move] if settings.move is not None else config.move_names():
        move = for_move(settings, config, name)
        state = RunState.load(move.state_file, move.stack)
        if settings.move is None and (not state.done("switch") or state.rolled_back or state.finished):
            continue  # only what is switched and still followed back is finished by a plain `ferry finish`
        report.moves.append((name, finish(move, say=say)))
    if not report.moves:
        say(f"nothing to finish: no move of stack {settings.stack} is switched and followed back")
    return report
