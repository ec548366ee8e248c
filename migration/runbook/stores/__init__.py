"""The stores the runbook moves, each behind :class:`~migration.runbook.stores.base.Store`.

Adding a store is a module here and one line in :data:`STORES`: the store says what its config
section, its state section and its two sides are; the phases drive it through :func:`moved_stores`,
which hands each one its narrow :class:`~migration.runbook.stores.base.StoreRun`.
"""

from __future__ import annotations

from typing import Any

from migration.runbook.context import RunContext
from migration.runbook.stores.base import FreezeView, ProgressFor, Side, Store, StoreRun, StoreVerify
from migration.runbook.stores.postgres import PostgresStore
from migration.runbook.stores.redis import RedisStore
from migration.runbook.stores.s3 import S3Store
from migration.stackconfig import MovedAddon

__all__ = ["STORES", "AnyStore", "ProgressFor", "Store", "StoreRun", "StoreVerify", "moved_addons", "moved_stores"]

AnyStore = Store[Any, Any, Any]

#: In the order the runbook reports them.
STORES: tuple[AnyStore, ...] = (PostgresStore(), RedisStore(), S3Store())


def moved_stores(ctx: RunContext, *, back: bool | None = None) -> list[tuple[AnyStore, StoreRun[Any, Any, Any]]]:
    """The stores this run moves, each with its view of this run.

    :param back: views moving each store from the target back into the old side (``None``: as the run
        goes now, back while a rollback after the switch is under way)."""
    moved = []
    back = ctx.state.back if back is None else back
    for store in STORES:
        config = store.configure(ctx.config, ctx.settings)
        if store.moves(config, ctx):
            run = _view(ctx, store, config)
            if back:
                run = run.reversed()
            if not run.rolling_back:  # a rollback undoes the way the run began, whatever the file says now
                store.check_kept(run)  # before the phase does anything with it
            moved.append((store, run))
    return moved


def moved_addons(ctx: RunContext) -> list[MovedAddon]:
    """The add-ons the app leaves, for every store this run moves."""
    return [move for store in STORES if store.moves(store.configure(ctx.config, ctx.settings), ctx)
            for move in store.addons(ctx.config)]  # fmt: skip


def _view(ctx: RunContext, store: AnyStore, config: Any) -> StoreRun[Any, Any, Any]:
    state = ctx.state
    running = [record for record in state.phases.values() if record.status == "running"]

    def locate(side: Side) -> Any:
        return store.endpoint(ctx, side)

    return StoreRun(
        store.name,
        config,
        state.section(store.name, store.section),
        locate,
        FreezeView(ctx.config.migration.freeze, state),
        save=ctx.save,
        say=ctx.say,
        work_dir=ctx.settings.state_dir,
        attempt=running[-1].attempts if running else 1,
        rolling_back="rollback" in state.phases,
    )
