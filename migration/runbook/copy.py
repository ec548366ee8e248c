"""Phases ``copy`` and ``catch-up`` (while the app is live), ``final-sync`` (inside the freeze) and
``after-switch``.

Each moved store copies side by side: ``copy`` starts what can run while the app writes
(Redis's live copy, the S3 follower, PostgreSQL's copy and change follow), ``catch-up`` waits
for the background copies to catch up and verifies what can be verified while live (PostgreSQL's
full checksum pass), ``final-sync`` brings every target to the frozen source's state (the live
copies drained, the S3 follower held, the PostgreSQL copy when change capture is off), and
``after-switch`` lets the stores whose writes never stopped (S3) bring over what the old side took
until the app ran the new release.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

from migration.errors import DifferencesFoundError
from migration.progress import PlainProgress, make_progress
from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome, done, skipped
from migration.runbook.parallel import side_by_side
from migration.runbook.preflight import check_targets
from migration.runbook.stores import ProgressFor, StoreVerify, moved_stores
from migration.runbook.verify import BACK

__all__ = ["after_switch", "catch_up", "copy_live", "final_sync", "stop_live_copies"]


def _progress_for(stores: int) -> ProgressFor:
    """One terminal holds one live display: stores moving side by side report in plain lines."""
    if stores > 1:
        return lambda unit: PlainProgress(unit=unit)
    return lambda unit: make_progress(unit=unit)


def copy_live(ctx: RunContext) -> PhaseOutcome:
    if not ctx.state.targets_checked:
        # A target the stack built a moment ago is checked here, while the app still runs.
        check_targets(ctx, copying_began=ctx.state.phases["copy"].attempts > 1)
    tasks: dict[str, Callable[[], str]] = {
        store.name: partial(store.copy_live, run) for store, run in moved_stores(ctx)
    }
    return done("; ".join(d for d in side_by_side(tasks).values() if d) or "nothing to copy while live")


def catch_up(ctx: RunContext) -> PhaseOutcome:
    stores = moved_stores(ctx)
    tasks: dict[str, Callable[[], str]] = {store.name: partial(store.catch_up, run) for store, run in stores}
    details = [d for d in side_by_side(tasks).values() if d]
    # The stores caught up side by side, the slowest setting the pace: what changed meanwhile is compared now.
    last: dict[str, Callable[[], str]] = {store.name: partial(store.last_live_pass, run) for store, run in stores}
    details += [d for d in side_by_side(last).values() if d]
    if ctx.config.migration.follows_back and not ctx.state.back:
        details += [d for d in (store.prepare_back(run) for store, run in stores) if d]
    return done("; ".join(details) or "no background copy")


def final_sync(ctx: RunContext) -> PhaseOutcome:
    stores = moved_stores(ctx)
    progress_for = _progress_for(len(stores))
    tasks: dict[str, Callable[[], str]] = {
        store.name: partial(_timed, partial(store.final_sync, run, progress_for)) for store, run in stores
    }
    return done("; ".join(side_by_side(tasks).values()) or "nothing to copy")


def _timed(task: Callable[[], str]) -> str:
    """Inside the freeze each store's share of the window is worth saying."""
    started = time.monotonic()
    detail = task()
    return f"{detail} ({time.monotonic() - started:.2f} s)"


def after_switch(ctx: RunContext) -> PhaseOutcome:
    """Once the app runs the new release, the stores whose writes never stopped (S3) copy what reached the old
    side until then, and are compared. A difference fails the phase (the old side still holds everything,
    and ``ferry run`` goes over it again); it cannot undo a switch made."""
    stores = [(store, run) for store, run in moved_stores(ctx) if store.follows_after_switch]
    if not stores:
        return skipped("no store follows after the switch")
    # Until every process runs the new release, an old one may still write to the old side.
    waited = ctx.platform.wait_for_release(ctx.config.migration.drain_seconds)
    tasks: dict[str, Callable[[], tuple[str, list[StoreVerify]]]] = {
        store.name: partial(store.after_switch, run) for store, run in stores
    }
    results = side_by_side(tasks).values()
    checked = [item for _, items in results for item in items]
    ctx.state.verify |= {f"{BACK if ctx.state.back else ''}{item.name}": item.report for item in checked}
    ctx.save()
    differences = [line for item in checked for line in item.differences]
    if differences:
        raise DifferencesFoundError(
            f"after the switch, {len(differences)} differences remain (first: {differences[0]}); the old side "
            "keeps every object: `ferry run` syncs again"
        )
    return done(f"{waited}; " + "; ".join(detail for detail, _ in results if detail))


def stop_live_copies(ctx: RunContext, *, back: bool | None = None) -> str:
    """Stop every background copy without draining it (rollback); *back*: the follow back's."""
    stores = moved_stores(ctx, back=back)
    return "; ".join(d for d in (store.stop_following(run) for store, run in stores) if d)
