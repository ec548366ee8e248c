"""The follow back (``migration.reverse``): a rollback after the switch that loses no write, until ``finish``.

From the switch on, every moved store's new side is followed into its old one (phase ``follow-back``):
PostgreSQL's capture on the target, applied into the old database through its fence's passage; Redis's
live copy from the new cache; S3's sync back, made by the rollback from the ledger of the forward sync.

``ferry rollback`` after the switch is then the cutover in reverse, on the stores' views moving back
(:func:`~migration.runbook.stores.moved_stores` while ``state.back``): the same phases — catch-up, the
freeze (of the target), the final sync (the follow back drained to the fence's marker), the verify of
what changed since the switch — then the switch back (the old add-ons attached as they were), the old
stores opened and what S3 took meanwhile synced back. A failure before the switch back lets the app
go on writing to the new stores, followed back as before. ``ferry finish`` is the point of no return.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from migration.runbook.context import RunContext
from migration.runbook.copy import after_switch, catch_up, final_sync
from migration.runbook.cutover import rollback_cutover
from migration.runbook.freeze import end_maintenance, freeze
from migration.runbook.outcome import PhaseOutcome, done, skipped
from migration.runbook.parallel import side_by_side
from migration.runbook.phases import Phase, run_phase
from migration.runbook.stores import moved_stores
from migration.runbook.verify import prove_frozen, verify

__all__ = ["BACK_PHASES", "CUTOVER_BACK", "FINISH", "follow_back", "roll_back_after_switch"]


def follow_back(ctx: RunContext) -> PhaseOutcome:
    """Phase ``follow-back``: after the switch, each store's new side followed into its old one."""
    if not ctx.config.migration.follows_back:
        return skipped("migration.reverse is off: a rollback from now on leaves the app's new writes behind")
    tasks: dict[str, Callable[[], str]] = {
        store.name: partial(store.follow_back, run) for store, run in moved_stores(ctx, back=True)
    }
    return done("; ".join(d for d in side_by_side(tasks).values() if d) or "nothing to follow back")


#: The switch back's move of the app (Pulumi's, the platform's), handed over by a task to its caller.
CUTOVER_BACK = "back:cutover"


def _switch_back(ctx: RunContext) -> PhaseOutcome:
    """The target's witnesses asked once more, then the app's config back on the old stores (by the caller,
    when a task does the rest)."""
    proven = prove_frozen(ctx)
    if ctx.hand_over is not None:
        ctx.hand_over(CUTOVER_BACK)
        moved = "the app moved back by the caller"
    else:
        moved = rollback_cutover(ctx)
    return done(moved + (f" (proven before: {proven})" if proven else ""))


def _open_old(ctx: RunContext) -> PhaseOutcome:
    """The app writes to the old stores again: each one opened, the freeze (maintenance) ended; the new
    stores stay closed to a dyno still on their URLs."""
    said = [store.unfreeze_writes(run) for store, run in moved_stores(ctx, back=False)]
    if ctx.state.freeze_mode not in ("read-only", "fence"):
        said.append(end_maintenance(ctx, after_release=True))
    ctx.state.frozen = False
    ctx.save()
    return done("; ".join(d for d in said if d) + "; the new stores stay closed")


def _after_back(ctx: RunContext) -> PhaseOutcome:
    """The old side's own: foreign keys the follow back took off validated, its records dropped."""
    said = [store.finish_target(run) for store, run in moved_stores(ctx, back=True)]
    return done("; ".join(d for d in said if d) or "nothing left to put back")


BACK_PHASES: tuple[Phase, ...] = (
    Phase("back:catch-up", catch_up),
    Phase("back:freeze", freeze),
    Phase("back:final-sync", final_sync),
    Phase("back:verify", verify),
    Phase("back:switch", _switch_back),
    Phase("back:unfreeze", _open_old),
    Phase("back:after-switch", after_switch),
    Phase("back:finish", _after_back),
)


def _writes_on_new_again(ctx: RunContext) -> str:
    """The rollback could not prove the old stores whole before its switch back: the app goes on writing to
    the new ones, followed back as before; the next ``ferry rollback`` starts again."""
    if ctx.state.done("back:switch"):
        return ""
    if ctx.state.frozen:
        if ctx.state.freeze_mode in ("read-only", "fence"):
            for store, run in moved_stores(ctx, back=True):
                store.unfreeze_writes(run)
        else:
            end_maintenance(ctx, after_release=False)  # nothing was switched: the app runs the release it ran
        ctx.state.frozen = False
    for phase in BACK_PHASES:
        ctx.state.phases.pop(phase.name, None)
    ctx.state.back = False
    ctx.save()
    follow_back(ctx)
    return "the app was unfrozen and writes to the new stores again, followed back as before"


def roll_back_after_switch(ctx: RunContext) -> None:
    """The cutover in reverse, from its first phase not done (a rollback resumed after a crash goes on).

    :raises FerryError: a phase failed (before the switch back the app writes to the new stores again)."""
    if not ctx.state.back:
        ctx.state.back = True
        # The formation is the app's as it runs on the new stores (a process type added since, a scale changed):
        # the rollback's maintenance freeze stops what runs now and puts back what ran.
        ctx.state.formation = {}
        ctx.save()
    for phase in BACK_PHASES:
        if ctx.state.done(phase.name):
            continue
        run_phase(ctx, phase, on_differences=_writes_on_new_again)


def _finish(ctx: RunContext) -> PhaseOutcome:
    said = [store.finish(run) for store, run in moved_stores(ctx, back=False)]
    ctx.state.finished = True
    ctx.save()
    return done("; ".join(d for d in said if d) or "nothing was followed back")


#: ``ferry finish``: the follow back stopped and taken off both sides of every store.
FINISH = Phase("finish", _finish)
