"""PostgreSQL in the runbook: the store, and the strategy it moves its data by (chosen once).

Copied inside the freeze (:class:`~.postgres_strategy.CopyInFreeze`), or, with ``migration.capture``,
copied and followed while the app writes (:class:`~.postgres_capture.CaptureAndFollow`): the phases
that differ are the strategy's; stopping and reopening the source's writes are the store's own.
"""

from __future__ import annotations

from typing import Any

from migration.errors import ConfigError, PlatformError, PreconditionError
from migration.postgres import (
    capture_errors,
    capture_status,
    connect_source,
    large_object_count,
    lower_fence,
    preflight_database,
    raise_fence,
    row_writes,
    set_read_only,
)
from migration.preflight import PreflightReport
from migration.runbook.context import RunSettings
from migration.runbook.follower import FollowerStatus
from migration.runbook.stores.base import (
    ProgressFor,
    Side,
    Store,
    StoreVerify,
    Whereabouts,
    keep_strategy,
    kept_strategy,
    location_of,
)
from migration.runbook.stores.postgres_capture import CaptureAndFollow, repair_capture
from migration.runbook.stores.postgres_strategy import (
    CopyInFreeze,
    PostgresConfig,
    PostgresRun,
    PostgresSide,
    PostgresState,
    PostgresStrategy,
)
from migration.stackconfig import MovedAddon, StackConfig

__all__ = ["PostgresState", "PostgresStore"]


class PostgresStore(Store[PostgresConfig, PostgresState, PostgresSide]):
    name = "postgres"
    section = PostgresState

    def configure(self, config: StackConfig, settings: RunSettings) -> PostgresConfig:
        migration = config.migration
        return PostgresConfig(
            moves=migration.postgres,
            capture=migration.capture,
            jobs=settings.jobs or migration.jobs,
            full_verify=settings.verify_mode == "full",
            catch_up_seconds=migration.catch_up_seconds,
            app_role=migration.app_role,
            helpers=settings.tasks - 1,  # --tasks needs a runner: its caller starts them (copyhelpers)
            config_var=config.heroku.database_config_var,
        )

    def strategy(self, run: PostgresRun) -> PostgresStrategy:
        """The one place that reads how this run moves PostgreSQL."""
        chosen = CaptureAndFollow() if run.config.capture else CopyInFreeze()
        return kept_strategy(run, chosen, "migration.capture", (CaptureAndFollow, CopyInFreeze))

    def moves(self, config: PostgresConfig, where: Whereabouts) -> bool:
        return config.moves

    def addons(self, stack: StackConfig) -> list[MovedAddon]:
        return [move for move in stack.moved_addons() if move.config_var == stack.heroku.database_config_var]

    def endpoint(self, where: Whereabouts, side: Side) -> PostgresSide:
        if side == "source":
            (move,) = self.addons(where.config)
            url = where.old_url(move)
            if url is None:
                raise PlatformError(f"the app has no {move.config_var} (nor its rollback alias's)", side="source")
            return PostgresSide(url, url)
        settings = where.settings
        if not settings.uses_stack:
            assert settings.target_url is not None
            return PostgresSide(settings.target_url, settings.target_app_url or settings.target_url)

        database = where.config.database.databases[0]
        app_output = "databaseUrls" if where.config.migration.app_role == "app" else "databaseOwnerUrls"
        owner_urls, app_urls = where.stack_output("databaseOwnerUrls"), where.stack_output(app_output)
        if database not in owner_urls or database not in app_urls:
            raise ConfigError(
                f"stack {settings.stack}'s outputs have no database {database!r}: run the provision phase"
            )
        return PostgresSide(owner_urls[database], app_urls[database])

    def switched_config(self, run: PostgresRun) -> dict[str, str]:
        return {run.config.config_var: run.to_side.app_url}

    def recorded(self, run: PostgresRun) -> dict[str, Any]:
        return {"postgres": location_of(run.to_side.url)}

    def preflight(self, run: PostgresRun) -> PreflightReport:
        return preflight_database(run.from_side.url, run.to_side.url, jobs=run.config.jobs)

    def check_freeze(self, run: PostgresRun) -> None:
        if run.freeze.configured != "fence":
            return
        count = large_object_count(run.from_side.url)
        if count:
            raise PreconditionError(
                f"freeze fence: the source holds {count} large objects, whose writes no trigger sees and the "
                "fence cannot stop; use migration.freeze: read-only or maintenance",
                side="source",
            )

    def check_kept(self, run: PostgresRun) -> None:
        self.strategy(run)

    def copy_live(self, run: PostgresRun) -> str:
        strategy = self.strategy(run)
        keep_strategy(run, strategy)
        return strategy.copy_live(run)

    def live_status(self, run: PostgresRun) -> FollowerStatus | None:
        return self.strategy(run).live_status(run)

    def catch_up(self, run: PostgresRun) -> str:
        return self.strategy(run).catch_up(run)

    def freeze_writes(self, run: PostgresRun) -> str:
        if run.freeze.configured == "fence":
            state = run.state
            if state.recopy:
                # The copy comes again inside this freeze, so capture only has to fence: broken (a trigger
                # taken off, a table rebuilt or created), it is put on anew before the fence needs it.
                repair_capture(run.from_side.url)
            with connect_source(run.from_side.url) as conn, capture_errors():
                fence = raise_fence(conn)
            state.marker, state.witness = fence.marker, fence.witness.to_json()
            run.save()
            return f"postgres fenced for every role ({fence.ended} transactions open across it ended)"
        set_read_only(run.from_side.app_url, True)
        return "app's database role set read-only; its sessions ended"

    def writes_stopped(self, run: PostgresRun) -> str:
        return self.strategy(run).writes_stopped(run)

    def unfreeze_writes(self, run: PostgresRun) -> str:
        if run.freeze.in_force == "fence" or (run.state.back_since is not None and not run.back):
            # Followed back since the switch, the old database was fenced (but for the follower) in every mode.
            # After a recorded run the fence went with capture and the role was made read-only instead.
            set_read_only(run.from_side.app_url, False)
            with connect_source(run.from_side.url) as conn:
                lower_fence(conn)
            return "postgres fence lowered"
        set_read_only(run.from_side.app_url, False)
        return "app's database role read-write again"

    def final_sync(self, run: PostgresRun, progress_for: ProgressFor) -> str:
        return self.strategy(run).final_sync(run, progress_for)

    def verify(self, run: PostgresRun) -> list[StoreVerify]:
        return self.strategy(run).verify(run)

    def prove_frozen(self, run: PostgresRun) -> list[StoreVerify]:
        return self.strategy(run).prove_frozen(run)

    def stop_following(self, run: PostgresRun) -> str:
        return "postgres follow stopped" if run.follower().stop() else ""

    def target_writes(self, run: PostgresRun) -> int | None:
        return row_writes(run.to_side.url)

    def finish_target(self, run: PostgresRun) -> str:
        return self.strategy(run).finish_target(run)

    def cleanup(self, run: PostgresRun) -> str:
        return self.strategy(run).cleanup(run)

    def prepare_back(self, run: PostgresRun) -> str:
        return self.strategy(run).prepare_back(run)

    def begin_back(self, run: PostgresRun) -> str:
        return self.strategy(run).begin_back(run)

    def follow_back(self, run: PostgresRun) -> str:
        return self.strategy(run).follow_back(run)

    def close_old(self, run: PostgresRun) -> str:
        return self.strategy(run).close_old(run)

    def finish(self, run: PostgresRun) -> str:
        return self.strategy(run).finish(run)

    def back_log(self, run: PostgresRun) -> dict[str, Any]:
        status = capture_status(run.from_side.url)
        if not status.installed:
            return {}
        # The worker's cap (PostgresFollowJob.max_log_bytes): over it capture comes off and the follow back stops.
        return {"log_entries": status.log_entries, "log_bytes": status.log_bytes, "log_cap_bytes": 10 << 30}

    def follow_back_lost(self, run: PostgresRun) -> str:
        if run.state.back_since is None:
            return ""
        status = capture_status(run.from_side.url)
        if not status.installed:
            return "capture is gone from the new database (the follow back's log reached its cap, or it was removed)"
        problems = status.problems
        if problems:
            # The follow back's log over its cap takes capture off the new database, as the forward one does.
            return f"capture on the new database cannot bring every write back: {problems[0]}"
        return ""

    def forget_copy(self, run: PostgresRun) -> None:
        state = run.state
        state.recopy, state.copy_started = state.copy_started, False
        # The next final sync copies anew: the live verify's position says nothing about that copy, and
        # the next freeze takes its own witness.
        state.verified_through, state.deferred_ranges, state.witness = None, [], None
