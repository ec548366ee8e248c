"""``ferry run`` and ``ferry rollback``: the runbook as ordered, timed, checkpointed phases.

preflight → provision → copy → alias → catch-up → freeze → final-sync → verify → switch → unfreeze →
after-switch → follow-back → smoke → settle → record → cleanup

and, with the follow back (``migration.reverse``), ``ferry rollback`` after the switch as the same phases
moving back (:mod:`.back`) until ``ferry finish``.

Each phase's start and end are written to the state file before and after it runs, so a run
started again after a crash continues with the first phase not done (phases are written to be
safe to repeat). One run per stack at a time (:class:`~migration.runbook.lock.RunLock`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from migration.errors import RunbookError, UsageError
from migration.runbook.back import CUTOVER_BACK, FINISH, follow_back, roll_back_after_switch
from migration.runbook.context import RunContext, RunSettings
from migration.runbook.copy import after_switch, catch_up, copy_live, final_sync, stop_live_copies
from migration.runbook.cutover import alias, rollback_cutover, switch
from migration.runbook.freeze import freeze, unfreeze
from migration.runbook.lock import RunLock
from migration.runbook.phases import Phase, run_phase
from migration.runbook.preflight import preflight
from migration.runbook.provision import provision
from migration.runbook.record import cleanup, record
from migration.runbook.settle import settle
from migration.runbook.smoke import SmokeFailedError, smoke
from migration.runbook.state import RunState
from migration.runbook.stores import STORES, moved_stores
from migration.runbook.tasks import (
    BACK_STEP,
    HANDOFF,
    RELEASE,
    ask_keeper,
    guard_task,
    keeper_of,
    legs,
    open_runner,
    run_leg,
    runner_order,
)
from migration.runbook.verify import verify
from migration.runner import Runner
from migration.stackconfig import load_stack_file

__all__ = ["PHASES", "PhaseSummary", "RunReport", "finish", "open_context", "release_old_stores", "rollback", "run"]


PHASES: tuple[Phase, ...] = (
    Phase("preflight", preflight),
    Phase("provision", provision, asks="pulumi up: create or update the AWS target"),
    Phase("copy", copy_live),
    Phase("alias", alias, asks="attach the old database under the rollback alias (one release while live)"),
    Phase("catch-up", catch_up),
    Phase("freeze", freeze, asks="stop the app's writes (maintenance mode, read-only role or the fence)"),
    Phase("final-sync", final_sync),
    Phase("verify", verify),
    Phase("switch", switch, asks="detach DATABASE and point DATABASE_URL (REDIS_URL, the buckets) at the target"),
    Phase("unfreeze", unfreeze),
    Phase("after-switch", after_switch),
    Phase("follow-back", follow_back),
    Phase("smoke", smoke),
    # After the smoke checks: a replica's minutes of creation must hold up neither the buckets' catch-up, nor
    # the follow back, nor a rollback the smoke checks call for.
    Phase("settle", settle),
    Phase("record", record),
    Phase("cleanup", cleanup),
)
PHASE_NAMES = tuple(phase.name for phase in PHASES)


@dataclass(frozen=True)
class PhaseSummary:
    name: str
    status: str
    seconds: float
    detail: str
    started_at: float


@dataclass
class RunReport:
    """Every phase of the stack's run so far; ``to_json()`` is the ``--json`` summary."""

    stack: str
    phases: list[PhaseSummary] = field(default_factory=list)
    rolled_back: bool = False

    @classmethod
    def of(cls, state: RunState) -> RunReport:
        return cls(
            stack=state.stack,
            phases=[
                PhaseSummary(name, record.status, record.seconds, record.detail, record.started_at)
                for name, record in state.phases.items()
            ],
            rolled_back=state.rolled_back,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "rolled_back": self.rolled_back,
            "phases": [
                {"name": p.name, "status": p.status, "seconds": p.seconds, "detail": p.detail} for p in self.phases
            ],
        }


def open_context(settings: RunSettings, say: Callable[[str], None], confirm: Callable[[str], bool]) -> RunContext:
    """The run's context: the stack file and the state, each store's section read as its own type."""
    if settings.target_app_url and settings.uses_stack:
        raise UsageError(
            "--target-app-url needs --target-url; with a stack, ferry:migration.appRole picks the role", side="target"
        )
    config = load_stack_file(settings.root, settings.stack)
    if settings.move is not None:
        config = config.for_move(settings.move)
    elif config.moves:
        raise UsageError(f"stack {settings.stack} lists moves: name one with --move ({', '.join(config.move_names())})")
    state = RunState.load(settings.state_file, settings.stack)
    for store in STORES:
        # Each store's section read as its own type now, before any phase runs on what it says.
        state.section(store.name, store.section)
    return RunContext(settings=settings, config=config, state=state, say=say, confirm=confirm)


@contextmanager
def _opened(
    settings: RunSettings, say: Callable[[str], None], confirm: Callable[[str], bool], *, guarded: bool = True
) -> Iterator[RunContext]:
    """The stack's context, under the run's lock (one run, rollback or finish per stack at a time), and no task
    of the run's running beside it (:func:`~migration.runbook.tasks.guard_task`); not *guarded*: the caller
    stops the run's task itself, once it knows it will go on (a refused rollback or finish stops nothing)."""
    with RunLock(settings.state_dir / "lock", settings.stack):
        ctx = open_context(settings, say, confirm)
        try:
            if settings.runner:
                open_runner(ctx)  # under ecs the state is the bucket's: every check below reads that one
            if guarded:
                guard_task(ctx, stop=False)
            yield ctx
        finally:
            ctx.close()


def _selected(state: RunState, start: str | None, until: str | None) -> list[Phase]:
    for name in (start, until):
        if name is not None and name not in PHASE_NAMES:
            raise RunbookError(f"no phase {name!r}; the phases are: {' '.join(PHASE_NAMES)}")
    first = PHASE_NAMES.index(start) if start else 0
    last = PHASE_NAMES.index(until) if until else len(PHASES) - 1
    if first > last:
        # An empty selection would exit 0 having done nothing, which reads as success.
        raise RunbookError(
            f"--from {start} comes after --until {until}: nothing to run (the phases: {' '.join(PHASE_NAMES)})"
        )
    return [phase for phase in PHASES[first : last + 1] if start == phase.name or not state.done(phase.name)]


def run(
    settings: RunSettings,
    *,
    say: Callable[[str], None],
    confirm: Callable[[str], bool],
    start: str | None = None,
    until: str | None = None,
) -> RunReport:
    """Run the stack's runbook from its first unfinished phase (or *start*) to the end (or *until*).

    :param say: receives one line per event (never a secret).
    :param confirm: asked before phases that change what the app's users see; ``--yes`` answers yes.
    :raises FerryError: the phase that failed, with how to resume or roll back.
    """
    with _opened(settings, say, confirm) as ctx:
        runner = open_runner(ctx) if settings.runner else None
        if ctx.state.rolled_back:
            raise RunbookError(
                f"stack {settings.stack} was rolled back; remove {settings.state_file} to start a new run"
            )
        if "rollback" in ctx.state.phases:
            raise RunbookError(
                f"a rollback of stack {settings.stack} was interrupted: "
                f"`ferry rollback --stack {settings.stack}{f' --move {settings.move}' if settings.move else ''}` "
                "finishes it"
            )
        selected = _selected(ctx.state, start, until)
        if runner is not None:
            _run_with_runner(ctx, runner, selected, start)
        else:
            for phase in selected:
                _ask(ctx, phase)
                _run_phase(ctx, phase)

        _revive_follow_back(ctx)
        return RunReport.of(ctx.state)


def _ask(ctx: RunContext, phase: Phase) -> None:
    settings = ctx.settings
    asks = phase.asks and not (phase.name == "provision" and not settings.uses_stack)
    if asks and not settings.yes and not ctx.confirm(f"{phase.name}: {phase.asks}. Go on?"):
        raise RunbookError(f"stopped before {phase.name}; `ferry run --stack {settings.stack}` continues")


def _run_phase(ctx: RunContext, phase: Phase) -> None:
    try:
        run_phase(ctx, phase, on_differences=after_differences)
    except SmokeFailedError as failed:
        _after_smoke_failure(ctx, failed)
        raise


def _run_with_runner(ctx: RunContext, runner: Runner, selected: list[Phase], start: str | None) -> None:
    """The control phases here, each leg of data phases as one task (:mod:`.tasks`). A leg's questions are
    asked before its task starts (the task asks none), but for the switch's, asked when the task hands the
    switch over."""
    by_name = {phase.name: phase for phase in PHASES}

    def handoff(name: str) -> None:
        if name == CUTOVER_BACK:  # a rollback's, through the follow back (ferry run's own smoke failure)
            _back_handoff(ctx)(name)
            return
        _ask(ctx, by_name[name])
        _run_phase(ctx, by_name[name])

    chosen = {phase.name for phase in selected}
    for phase, leg in legs([phase for phase in runner_order(PHASES) if phase.name in chosen]):
        if phase is not None:
            _ask(ctx, phase)
            _run_phase(ctx, phase)
            continue
        for name in leg:
            if name in by_name and name not in HANDOFF:
                _ask(ctx, by_name[name])
        run_leg(ctx, runner, leg, handoff, forced=start)


def _revive_follow_back(ctx: RunContext) -> None:
    """The run is over and the follow back on: a worker of it that died (a reboot, a kill) is started again,
    before the new side's log grows toward its cap (with ``--runner ecs``: its keeper task, if gone)."""
    state = ctx.state
    if not state.done("follow-back") or state.finished or state.rolled_back or state.back:
        return
    if ctx.settings.runner == "ecs":
        runner = open_runner(ctx)
        if keeper_of(ctx, runner) is None:
            ctx.say("[follow-back] no task keeps the follow back any more: started again")
            run_leg(ctx, runner, ["follow-back"], _back_handoff(ctx), forced="follow-back")
        return
    dead = [
        store.name for store, run in moved_stores(ctx, back=True) if run.follower().pid and not run.follower().alive()
    ]
    if dead:
        ctx.say(f"[follow-back] {', '.join(dead)} stopped: started again: {follow_back(ctx).detail}")


def _back_handoff(ctx: RunContext) -> Callable[[str], None]:
    """What a task doing a rollback through the follow back hands over: the app's move back."""

    def handoff(step: str) -> None:
        if step != CUTOVER_BACK:
            raise RunbookError(f"a rollback's task handed over {step!r}, which is not the caller's")
        rollback_cutover(ctx)

    return handoff


def _roll_back_after_switch(ctx: RunContext) -> None:
    """The rollback through the follow back, where its workers are: in this process, or (``--runner ecs``) in
    the task keeping them, or a new task if none does (it starts them again)."""
    if ctx.settings.runner != "ecs":
        roll_back_after_switch(ctx)
        return
    runner = open_runner(ctx)
    if not ask_keeper(ctx, runner, "rollback", _back_handoff(ctx)):
        run_leg(ctx, runner, [BACK_STEP], _back_handoff(ctx))


def _after_smoke_failure(ctx: RunContext, failed: SmokeFailedError) -> None:
    automatic = ctx.settings.yes and ctx.config.migration.rollback_on_smoke_failure
    if automatic or (not ctx.settings.yes and ctx.confirm("smoke checks failed. Roll back now?")):
        if ctx.state.done("switch") and not _no_follow_back(ctx):
            _roll_back_after_switch(ctx)  # what the app wrote to the new stores since comes back too
        _rollback(ctx)
        failed.message += "; rolled back to the old database"


def after_differences(ctx: RunContext) -> str:
    """Nothing was switched: the app goes back to writing to its old stores, at once.

    The next ``ferry run`` starts again at the freeze (the old stores took writes since),
    so the final sync and the verify run on a frozen source once more. Returns whether
    the app was unfrozen (what was done, or nothing).
    """
    if not ctx.state.frozen or ctx.state.done("switch"):
        return ""
    # Nothing to put back on the app: the switch detaches only after the proof (the alias attached before the
    # freeze stays, as harmless as it was while live).
    ctx.say(f"unfreezing: {unfreeze(ctx, rolling_back=True).detail}")
    for name in ("freeze", "final-sync"):
        ctx.state.phases.pop(name, None)
    for store, run in moved_stores(ctx):
        store.forget_copy(run)
    ctx.save()
    return "the app was unfrozen and writes to its old stores again"


def _rollback(ctx: RunContext) -> None:
    ctx.state.start("rollback")
    ctx.save()
    started = time.monotonic()
    # The follow back too, when the rollback does not go through it (it was off, it stopped, or is discarded).
    done = [stop_live_copies(ctx), stop_live_copies(ctx, back=not ctx.state.back)]
    if ctx.state.phases.get("switch") and not ctx.state.done("back:switch"):
        done.append(rollback_cutover(ctx))
    if ctx.settings.runner:
        # The old stores are the task's to reach (inside the target's network), not the caller's.
        run_leg(ctx, open_runner(ctx), [RELEASE], handoff=lambda _phase: None)
        done.append(ctx.state.released)
    else:
        done.append(release_old_stores(ctx))
    ctx.state.rolled_back = True
    ctx.state.finish("rollback", "done", "; ".join(d for d in done if d), time.monotonic() - started)
    ctx.save()
    ctx.say(f"[rollback] done in {time.monotonic() - started:.1f} s")


def release_old_stores(ctx: RunContext) -> str:
    """A rollback's work on the stores: the app unfrozen on its old stores, ferry's things taken off them."""
    done = [unfreeze(ctx, rolling_back=True).detail] if ctx.state.frozen else []
    done += [store.cleanup(run) for store, run in moved_stores(ctx, back=False)]
    ctx.state.released = "; ".join(d for d in done if d)
    ctx.save()
    return ctx.state.released


def _left_behind(ctx: RunContext) -> str:
    """How long the app has run on the targets, and what each target counts of the writes it took since."""
    switch = ctx.state.phases["switch"]
    minutes = max(0.0, time.time() - switch.started_at - switch.seconds) / 60
    counted = []
    for store, run in moved_stores(ctx):
        before, now = run.state.writes_at_switch, store.target_writes(run)
        if before is not None and now is not None and now >= before:
            counted.append(f"{store.name}: {now - before} writes")
        elif before is not None:
            counted.append(f"{store.name}: writes not counted (its counters were reset or cannot be read)")
    return f"{minutes:.0f} min ago" + (f" ({'; '.join(counted)})" if counted else "")


def rollback(
    settings: RunSettings, *, say: Callable[[str], None], discard_writes_since_switch: bool = False
) -> RunReport:
    """Put the app back on the old stores and unfreeze it.

    Before the switch: through the rollback alias, as they were at the freeze. After it, with the follow
    back running: the cutover in reverse (the new stores frozen, followed back to the last write,
    verified, the app switched back), so no write the new stores acknowledged is lost.

    :param discard_writes_since_switch: after the switch, with no follow back to bring what the app wrote
        to the new stores since (it is off, it stopped, or ``finish`` ended it), go back all the same (without
        it, such a rollback is refused, saying what it would leave).
    :raises RunbookError: the run never reached the freeze, so there is nothing to roll back; or the app
        has run on the new stores and the writes it made there would be left behind.
    """
    with _opened(settings, say, lambda _question: True, guarded=False) as ctx:
        if ctx.state.rolled_back:
            raise RunbookError(f"stack {settings.stack} is already rolled back")
        if "freeze" not in ctx.state.phases:
            raise RunbookError(f"nothing to roll back: stack {settings.stack}'s app was never frozen")
        guard_task(ctx, stop=True)  # a task of the run would write the state beside the rollback
        state = ctx.state
        if state.done("back:switch") or (state.done("switch") and not discard_writes_since_switch):
            # Once the app is switched back, the rollback in reverse can only be finished.
            why = "" if state.back else _no_follow_back(ctx)
            if why:
                raise RunbookError(
                    f"the app has run on the new stores since the switch, {_left_behind(ctx)}, and {why}: a "
                    "rollback leaves what it wrote there since on the targets, out of the app's reach; "
                    "`ferry rollback --discard-writes-since-switch` goes back all the same"
                )
            _roll_back_after_switch(ctx)
        elif state.back:
            # Asked to go back without the follow back, halfway through a rollback that went through it
            # (it failed): the old stores as they are, the new ones left closed.
            state.back = False
            ctx.save()
        _rollback(ctx)
        return RunReport.of(ctx.state)  # read again if a task did the stores' part


def _no_follow_back(ctx: RunContext) -> str:
    """Why the follow back cannot bring the new stores' writes back (``""``: it can)."""
    if ctx.state.finished:
        return "`ferry finish` ended the follow back"
    if not ctx.config.migration.follows_back:
        return "migration.reverse is off (nothing followed the new stores back)"
    if not ctx.state.done("follow-back"):
        return (
            f"the follow back never began (`ferry run --stack {ctx.settings.stack}` begins it, and brings what the "
            "app wrote since the switch: then roll back)"
        )
    if ctx.settings.runner == "ecs":
        return ""  # the stores are the tasks' to reach: a follow back that lost its log stops the rollback there
    lost = [
        f"{store.name}: {why}" for store, run in moved_stores(ctx, back=True) if (why := store.follow_back_lost(run))
    ]
    return f"the follow back stopped ({lost[0]})" if lost else ""


def finish(settings: RunSettings, *, say: Callable[[str], None]) -> RunReport:
    """The move is final: stop following the new stores back and take capture off both sides.

    :raises RunbookError: the run has not switched yet, or was rolled back."""
    with _opened(settings, say, lambda _question: True, guarded=False) as ctx:
        state = ctx.state
        if state.rolled_back:
            raise RunbookError(f"stack {settings.stack} was rolled back: nothing to finish")
        if state.back and (state.frozen or state.done("back:switch")):
            raise RunbookError(
                f"a rollback of stack {settings.stack} is under way: `ferry rollback --stack {settings.stack}` "
                "finishes it"
            )
        if not state.done("switch"):
            raise RunbookError(
                f"stack {settings.stack}'s app is not on the new stores: `{settings.resume_command}` "
                "first (finish ends the way back)"
            )
        guard_task(ctx, stop=True)  # a task of the run would write the state beside the finish
        state = ctx.state
        if state.back:
            # A rollback that stopped before its freeze (the app still writes to the new stores): given up.
            for name in [name for name in state.phases if name.startswith("back:")]:
                state.phases.pop(name)
            state.back = False
            ctx.save()
        if not state.finished:
            if settings.runner == "ecs":
                # Where the follow back's workers are: the task keeping them, or a task of its own.
                runner = open_runner(ctx)
                if not ask_keeper(ctx, runner, "finish", _back_handoff(ctx)):
                    run_leg(ctx, runner, [FINISH.name], _back_handoff(ctx))
            else:
                run_phase(ctx, FINISH)
        return RunReport.of(ctx.state)
