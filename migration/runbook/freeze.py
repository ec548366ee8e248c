"""Phases ``freeze`` and ``unfreeze``: stop the app's writes to the old stores, then let them go on.

``maintenance`` (the default): maintenance mode on, and every process type other than web scaled
to 0, because maintenance mode stops neither workers nor scheduler jobs; the counts are kept in
the run's state and restored on unfreeze. ``read-only``: every moved store stops taking writes
while reads go on: the app's database role defaults to read-only transactions and its open
sessions are ended; the source Redis holds writes (``CLIENT PAUSE WRITE``). S3 has no such switch and
needs none: uploads go on to the old buckets in every mode and are synced after the switch (its follower
is held from here on, ``writes_stopped``).

``fence`` (with ``migration.capture``): as ``read-only``, but PostgreSQL's writes stop for every
role, by the capture triggers refusing them, and transactions open across it are ended.

After the switch the app writes to the targets: a read-only or fence freeze then leaves the old stores
closed (a dyno still on the old URLs must not write where nobody reads any more), and only
``ferry rollback`` opens them again.
"""

from __future__ import annotations

import time
from typing import Any

from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome, done
from migration.runbook.stores import AnyStore, StoreRun, moved_stores

__all__ = ["end_maintenance", "freeze", "unfreeze"]


def freeze(ctx: RunContext) -> PhaseOutcome:
    mode = ctx.config.migration.freeze
    stores = moved_stores(ctx)  # refused (a store's way of moving changed) before anything is written
    ctx.state.freeze_mode = mode
    for store, run in stores:
        # How far behind each live copy was as writes stopped: what the final sync has left to drain.
        if (status := store.live_status(run)) is not None:
            run.state.lag_at_freeze = {
                "queued": status.queued,
                "seconds_behind": status.seconds_behind,
                "applied": status.applied,
            }
    ctx.save()
    if mode in ("read-only", "fence"):
        detail = "; ".join(d for d in _freeze_each(stores) if d)
    else:
        if not ctx.state.formation:
            ctx.state.formation = ctx.platform.formation()
            ctx.save()
        ctx.platform.set_maintenance(True)
        stopped = {kind: 0 for kind, count in ctx.state.formation.items() if kind != "web" and count > 0}
        ctx.platform.scale(stopped)
        time.sleep(ctx.config.migration.drain_seconds)
        detail = (
            f"maintenance on; scaled to 0: {', '.join(sorted(stopped)) or 'nothing'}; "
            f"drained {ctx.config.migration.drain_seconds:g} s"
        )
    ctx.state.frozen = True
    ctx.save()
    # Taken once writes stopped, whatever stopped them: what shows later that nothing moved since.
    for store, run in stores:
        store.writes_stopped(run)
    return done(detail)


def end_maintenance(ctx: RunContext, *, after_release: bool) -> str:
    """Maintenance off and the process counts recorded at the freeze scaled back; what was done.

    :param after_release: a switch (or a switch back) made a release: no process still on the release before it
        may serve once maintenance is off, it would write to the stores the app left (locally: the app restarted;
        on Heroku the router sends nothing to a dyno the release stopped)."""
    restore = {kind: count for kind, count in ctx.state.formation.items() if kind != "web" and count > 0}
    if after_release:
        ctx.platform.wait_for_release(0)
    ctx.platform.scale(restore)
    ctx.platform.set_maintenance(False)
    return f"maintenance off; scaled back: {', '.join(f'{k}={v}' for k, v in sorted(restore.items())) or 'nothing'}"


def _freeze_each(stores: list[tuple[AnyStore, StoreRun[Any, Any, Any]]]) -> list[str]:
    """Each store's own write stop; when one fails, those already stopped go on again (the app must not
    stay half frozen by a freeze that did not happen)."""
    stopped: list[tuple[AnyStore, StoreRun[Any, Any, Any]]] = []
    details = []
    try:
        for store, run in stores:
            details.append(store.freeze_writes(run))
            stopped.append((store, run))
    except BaseException:
        for store, run in reversed(stopped):
            store.unfreeze_writes(run)
        raise
    return details


def unfreeze(ctx: RunContext, *, rolling_back: bool = False) -> PhaseOutcome:
    """Let writes go on: to the targets after the switch, to the old stores before it or on rollback."""
    if not ctx.state.frozen:
        return done("not frozen")
    closed = ""
    if ctx.state.done("switch") and not rolling_back and ctx.config.migration.follows_back:
        # Before the app writes anywhere again: the old stores closed to a process still on their URLs, in every
        # mode (the follow back will write there through its own passage).
        closed = "; ".join(d for d in (store.close_old(run) for store, run in moved_stores(ctx)) if d)
    if ctx.state.freeze_mode in ("read-only", "fence"):
        if ctx.state.done("switch") and not rolling_back:
            return done(
                "the app writes to the targets now; the old stores stay read-only (ferry rollback reopens them)"
                + (f"; {closed}" if closed else "")
            )
        detail = "; ".join(d for d in (store.unfreeze_writes(run) for store, run in moved_stores(ctx)) if d)
    else:
        detail = end_maintenance(ctx, after_release=ctx.state.done("switch") and not rolling_back)
        detail += f"; {closed}" if closed else ""
    ctx.state.frozen = False
    ctx.save()
    return done(detail)
