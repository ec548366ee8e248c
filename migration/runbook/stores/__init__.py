"""The stores the runbook moves, each behind :class:`~migration.runbook.stores.base.Store`.

Adding a store is a module here and one line in :data:`STORES`.
"""

from __future__ import annotations

from migration.runbook.context import RunContext, Sources
from migration.runbook.stores.base import ProgressFor, Store, StoreVerify
from migration.runbook.stores.postgres import PostgresStore
from migration.runbook.stores.redis import RedisStore
from migration.runbook.stores.s3 import S3Store

__all__ = ["STORES", "ProgressFor", "Store", "StoreVerify", "moved_stores"]

#: In the order the runbook reports them.
STORES: tuple[Store, ...] = (PostgresStore(), RedisStore(), S3Store())


def moved_stores(ctx: RunContext, sources: Sources) -> list[Store]:
    """The stores this run moves."""
    return [store for store in STORES if store.moves(ctx, sources)]
