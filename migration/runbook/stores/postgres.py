"""PostgreSQL in the runbook: the store, and the strategy it moves its data by (chosen once).

Copied inside the freeze (:class:`~.postgres_strategy.CopyInFreeze`), or, with ``migration.capture``,
copied and followed while the app writes (:class:`~.postgres_capture.CaptureAndFollow`): the phases
that differ are the strategy's; stopping and reopening the source's writes are the store's own.
"""

from __future__ import annotations

from migration.errors import PreconditionError
from migration.postgres import (
    capture_errors,
    connect_source,
    large_object_count,
    lower_fence,
    preflight_database,
    raise_fence,
    set_read_only,
)
from migration.preflight import PreflightReport
from migration.runbook.context import RunContext, Sources, Targets
from migration.runbook.follower import Follower, FollowerStatus
from migration.runbook.stores.base import ProgressFor, Store, StoreVerify
from migration.runbook.stores.postgres_capture import CaptureAndFollow, repair_capture
from migration.runbook.stores.postgres_strategy import CopyInFreeze, PostgresStrategy, jobs_of

__all__ = ["PostgresStore"]


class PostgresStore(Store):
    name = "postgres"

    def strategy(self, ctx: RunContext) -> PostgresStrategy:
        """The one place that reads how this run moves PostgreSQL."""
        return CaptureAndFollow(self) if ctx.config.migration.capture else CopyInFreeze(self)

    def moves(self, ctx: RunContext, sources: Sources) -> bool:
        return ctx.config.migration.postgres

    def preflight(self, ctx: RunContext, sources: Sources, targets: Targets) -> PreflightReport:
        return preflight_database(sources.database_url, targets.database_url, jobs=jobs_of(ctx))

    def check_freeze(self, ctx: RunContext, sources: Sources) -> None:
        if ctx.config.migration.freeze != "fence":
            return
        count = large_object_count(sources.database_url)
        if count:
            raise PreconditionError(
                f"freeze fence: the source holds {count} large objects, whose writes no trigger sees and the "
                "fence cannot stop; use migration.freeze: read-only or maintenance",
                side="source",
            )

    def follower(self, ctx: RunContext) -> Follower:
        return Follower(self.name, ctx.settings.state_dir, self.state(ctx).follower, ctx.save)

    def copy_live(self, ctx: RunContext, sources: Sources, targets: Targets) -> str:
        return self.strategy(ctx).copy_live(ctx, sources, targets)

    def live_status(self, ctx: RunContext) -> FollowerStatus | None:
        return self.strategy(ctx).live_status(ctx)

    def catch_up(self, ctx: RunContext, sources: Sources, targets: Targets) -> str:
        return self.strategy(ctx).catch_up(ctx, sources, targets)

    def freeze_writes(self, ctx: RunContext, sources: Sources) -> str:
        if ctx.config.migration.freeze == "fence":
            if self.state(ctx).recopy:
                # The copy comes again inside this freeze, so capture only has to fence: broken (a trigger
                # taken off, a table rebuilt or created), it is put on anew before the fence needs it.
                repair_capture(sources.database_url)
            with connect_source(sources.database_url) as conn, capture_errors():
                fence = raise_fence(conn)
            state = self.state(ctx)
            state.marker, state.witness = fence.marker, fence.witness.to_json()
            ctx.save()
            return f"postgres fenced for every role ({fence.ended} transactions open across it ended)"
        set_read_only(sources.database_url, True)
        return "app's database role set read-only; its sessions ended"

    def writes_stopped(self, ctx: RunContext, sources: Sources) -> str:
        return self.strategy(ctx).writes_stopped(ctx, sources)

    def unfreeze_writes(self, ctx: RunContext, sources: Sources) -> str:
        if ctx.state.freeze_mode == "fence":
            # After a recorded run the fence went with capture and the role was made read-only instead.
            set_read_only(sources.database_url, False)
            with connect_source(sources.database_url) as conn:
                lower_fence(conn)
            return "postgres fence lowered"
        set_read_only(sources.database_url, False)
        return "app's database role read-write again"

    def final_sync(self, ctx: RunContext, sources: Sources, targets: Targets, progress_for: ProgressFor) -> str:
        return self.strategy(ctx).final_sync(ctx, sources, targets, progress_for)

    def verify(self, ctx: RunContext, sources: Sources, targets: Targets) -> list[StoreVerify]:
        return self.strategy(ctx).verify(ctx, sources, targets)

    def prove_frozen(self, ctx: RunContext, sources: Sources, targets: Targets) -> list[StoreVerify]:
        return self.strategy(ctx).prove_frozen(ctx, sources, targets)

    def stop_following(self, ctx: RunContext) -> str:
        return "postgres follow stopped" if self.follower(ctx).stop() else ""

    def finish_target(self, ctx: RunContext, targets: Targets) -> str:
        return self.strategy(ctx).finish_target(ctx, targets)

    def cleanup(self, ctx: RunContext, sources: Sources) -> str:
        return self.strategy(ctx).cleanup(ctx, sources)

    def forget_copy(self, ctx: RunContext) -> None:
        state = self.state(ctx)
        state.recopy, state.copy_started = state.copy_started, False
        # The next final sync copies anew: the live verify's position says nothing about that copy, and
        # the next freeze takes its own witness.
        state.verified_through, state.deferred_ranges, state.witness = None, [], None
