"""Phases ``copy`` (while the app is live) and ``final-sync`` (inside the freeze).

Each moved store copies side by side: ``copy`` starts what can run while the app writes
(Redis's live copy, a first S3 sync), ``final-sync`` brings every target to the frozen
source's state (Redis's live copy drained, an incremental S3 sync, the PostgreSQL copy
until change capture lands).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from migration.progress import PlainProgress, make_progress
from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome, done
from migration.runbook.parallel import side_by_side
from migration.runbook.preflight import check_targets
from migration.runbook.stores import ProgressFor, moved_stores

__all__ = ["copy_live", "final_sync", "stop_live_copies"]


def _progress_for(stores: int) -> ProgressFor:
    """One terminal holds one live display: stores moving side by side report in plain lines."""
    if stores > 1:
        return lambda unit: PlainProgress(unit=unit)
    return lambda unit: make_progress(unit=unit)


def copy_live(ctx: RunContext) -> PhaseOutcome:
    if not ctx.state.targets_checked:
        # A target the stack built a moment ago is checked here, while the app still runs.
        check_targets(ctx, copying_began=ctx.state.phases["copy"].attempts > 1)
    sources, targets = ctx.sources(), ctx.targets()
    stores = moved_stores(ctx, sources)
    tasks: dict[str, Callable[[], str]] = {
        store.name: partial(store.copy_live, ctx, sources, targets) for store in stores
    }
    return done("; ".join(d for d in side_by_side(tasks).values() if d) or "nothing to copy while live")


def final_sync(ctx: RunContext) -> PhaseOutcome:
    sources, targets = ctx.sources(), ctx.targets()
    stores = moved_stores(ctx, sources)
    progress_for = _progress_for(len(stores))
    tasks: dict[str, Callable[[], str]] = {
        store.name: partial(store.final_sync, ctx, sources, targets, progress_for) for store in stores
    }
    return done("; ".join(side_by_side(tasks).values()) or "nothing to copy")


def stop_live_copies(ctx: RunContext) -> str:
    """Stop every background copy without draining it (rollback)."""
    sources = ctx.sources()
    return "; ".join(d for d in (store.stop_following(ctx) for store in moved_stores(ctx, sources)) if d)
