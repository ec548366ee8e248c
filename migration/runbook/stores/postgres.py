"""PostgreSQL in the runbook: copied inside the freeze, or, with ``migration.capture``, copied and
followed while the app writes (the freeze then only drains the change log)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial

from migration.errors import FollowerError, PreconditionError, ResumeError
from migration.postgres import (
    CaptureSettings,
    CopyOptions,
    CopyResult,
    DeferredRange,
    Witness,
    apply_batch,
    await_validation,
    capture_errors,
    capture_status,
    connect_source,
    connect_target,
    copy_database,
    copy_keyless_tables,
    drain_to_marker,
    ensure_capture,
    forget_follow,
    large_object_count,
    lower_fence,
    parse_url,
    preflight_database,
    prepare_target,
    raise_fence,
    read_identity,
    refuse_schema_changes,
    remove_capture,
    restore_constraints,
    set_read_only,
    sync_large_objects,
    sync_matviews,
    sync_sequences,
    take_witness,
    target_is_empty,
    validate_constraints,
    verify_changes,
    verify_databases,
    verify_frozen,
    verify_live,
)
from migration.preflight import PreflightReport
from migration.progress import PlainProgress, ProgressSink
from migration.runbook.context import RunContext, Sources, Targets
from migration.runbook.follower import Follower, FollowerStatus
from migration.runbook.state import StoreState
from migration.runbook.stores.base import ProgressFor, Store, StoreVerify
from migration.worker import PostgresFollowJob

__all__ = ["PostgresStore"]


class PostgresStore(Store):
    name = "postgres"

    def moves(self, ctx: RunContext, sources: Sources) -> bool:
        return ctx.config.migration.postgres

    def preflight(self, ctx: RunContext, sources: Sources, targets: Targets) -> PreflightReport:
        return preflight_database(sources.database_url, targets.database_url, jobs=_jobs(ctx))

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
        if not ctx.config.migration.capture:
            return "postgres: copied inside the freeze (capture is off)"
        follower = self.follower(ctx)
        if follower.alive():
            return f"postgres: following the change log (pid {follower.pid})"
        state = self.state(ctx)
        resume, state.copy_started = state.copy_started, True
        if not resume:
            # Capture goes in before the copy's snapshot: every later change is then in the log (an
            # install that was interrupted is finished, tables created since get their triggers).
            ensure_capture(sources.database_url)
        ctx.save()
        options = CopyOptions(sources.database_url, targets.database_url, jobs=_jobs(ctx))
        copied = _copy(options, PlainProgress(unit="bytes"), resume=resume)
        if copied is not None and copied.not_valid_foreign_keys:
            with connect_target(targets.database_url) as dst, capture_errors():
                await_validation(dst, copied.not_valid_foreign_keys)  # validated at cleanup, the changes followed
        return f"postgres: copied, following the change log (pid {_start_follower(follower, sources, targets)})"

    def live_status(self, ctx: RunContext) -> FollowerStatus | None:
        return self.follower(ctx).status() if ctx.config.migration.capture else None

    def catch_up(self, ctx: RunContext, sources: Sources, targets: Targets) -> str:
        """Wait until the follow has caught up, then the full checksum pass while the app writes."""
        if not ctx.config.migration.capture:
            return ""
        follower = self.follower(ctx)
        if not follower.alive():
            # It died since the copy (a crash of the machine, a kill): the log kept every change; go on.
            _start_follower(follower, sources, targets)
        status = _wait_caught_up(ctx, follower)
        detail = f"postgres: caught up ({status.queued} changes waiting, {status.seconds_behind:.1f} s behind)"
        if ctx.settings.verify_mode != "full":
            return detail
        live = verify_live(sources.database_url, targets.database_url, jobs=_jobs(ctx))
        state = self.state(ctx)
        state.verified_through = live.through
        state.deferred_ranges = [[r.table, r.label, r.where] for r in live.deferred]
        ctx.save()
        # The pass may take minutes on a big database: what the app wrote meanwhile is applied now, not
        # drained inside the freeze.
        status = _wait_caught_up(ctx, follower)
        return (
            f"{detail}; verified live: {live.report.rows_checked} rows in {live.report.ranges_checked} key ranges, "
            f"{len(live.deferred)} ranges left to the freeze; {status.queued} changes waiting after it"
        )

    def freeze_writes(self, ctx: RunContext, sources: Sources) -> str:
        if ctx.config.migration.freeze == "fence":
            if self.state(ctx).recopy:
                # The copy comes again inside this freeze, so capture only has to fence: broken (a trigger
                # taken off, a table rebuilt or created), it is put on anew before the fence needs it.
                _repair_capture(sources.database_url)
            with connect_source(sources.database_url) as conn, capture_errors():
                fence = raise_fence(conn)
            state = self.state(ctx)
            state.marker, state.witness = fence.marker, fence.witness.to_json()
            ctx.save()
            return f"postgres fenced for every role ({fence.ended} transactions open across it ended)"
        set_read_only(sources.database_url, True)
        return "app's database role set read-only; its sessions ended"

    def writes_stopped(self, ctx: RunContext, sources: Sources) -> str:
        """With capture, the witness of the source as its writes stopped (the fence takes its own)."""
        if not ctx.config.migration.capture or ctx.state.freeze_mode == "fence":
            return ""
        with connect_source(sources.database_url) as conn, capture_errors():
            witness = take_witness(conn, read_identity(conn))
        self.state(ctx).witness = witness.to_json()
        ctx.save()
        return ""

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
        if ctx.config.migration.capture and not self.state(ctx).recopy:
            return self._drain(ctx, sources, targets)
        state = self.state(ctx)
        resume, state.copy_started = state.copy_started, True
        ctx.save()
        options = CopyOptions(source_url=sources.database_url, target_url=targets.database_url, jobs=_jobs(ctx))
        progress = progress_for("bytes")
        try:
            if state.recopy:
                # The app wrote to the source after an earlier final copy (a failed verify unfroze it):
                # that copy is stale, and the target holds nothing but it.
                again = copy_database(replace(options, clean=True), progress)
                if ctx.config.migration.capture:
                    self._empty_log(state.marker, sources, targets)
                state.recopy = False
                ctx.save()
                return f"postgres: {again.rows} rows in {len(again.tables)} tables (copied again)"
            result = _copy(options, progress, resume=resume)
        finally:
            progress.close()
        if result is None:
            return "postgres: the copy had finished before the interruption (verify checks it)"
        return f"postgres: {result.rows} rows in {len(result.tables)} tables" + (" (resumed)" if result.resumed else "")

    def verify(self, ctx: RunContext, sources: Sources, targets: Targets) -> list[StoreVerify]:
        state = self.state(ctx)
        if ctx.config.migration.capture:
            _sync_sequences(sources, targets)
        if ctx.config.migration.capture and state.verified_through is not None:
            # The live pass checked everything; what changed since is compared (the module says why that is enough).
            deferred = tuple(DeferredRange(*r) for r in state.deferred_ranges)
            changes = partial(
                verify_changes,
                sources.database_url,
                targets.database_url,
                through=state.verified_through,
                deferred=deferred,
                jobs=_jobs(ctx),
            )
            # Both only read, and the witness does not trust the log the other relies on: side by side.
            with ThreadPoolExecutor(1) as pool:
                proof = pool.submit(self._proof, state, sources, targets)
                return [StoreVerify.of("postgres", changes()), *proof.result()]
        report = verify_databases(
            sources.database_url,
            targets.database_url,
            mode="full" if ctx.settings.verify_mode == "full" else "quick",
            jobs=_jobs(ctx),
        )
        return [StoreVerify.of("postgres", report)]

    def prove_frozen(self, ctx: RunContext, sources: Sources, targets: Targets) -> list[StoreVerify]:
        """The verify of what changed trusts the change log; the witness the freeze took does not."""
        state = self.state(ctx)
        if not ctx.config.migration.capture or state.witness is None:
            return []
        # The sequences are written on the target and the proof only reads: side by side.
        with ThreadPoolExecutor(1) as pool:
            synced = pool.submit(_sync_sequences, sources, targets)
            proof = self._proof(state, sources, targets)
            synced.result()
        return proof

    @staticmethod
    def _proof(state: StoreState, sources: Sources, targets: Targets) -> list[StoreVerify]:
        if state.witness is None:
            return []
        report = verify_frozen(sources.database_url, targets.database_url, Witness.from_json(state.witness))
        return [StoreVerify.of("postgres:witness", report)]

    def _drain(self, ctx: RunContext, sources: Sources, targets: Targets) -> str:
        """Inside the freeze: the follower's last batch, the log to the fence's marker, sequences, keyless tables."""
        follower = self.follower(ctx)
        follower.drain(_FOLLOW_READY_SECONDS)
        state = self.state(ctx)
        last = follower.status()
        # What the follower applied after the freeze began is drained inside it too.
        by_follower = max(0, last.applied - int(state.lag_at_freeze.get("applied", last.applied))) if last else 0
        with (
            connect_source(sources.database_url) as src,
            connect_target(targets.database_url) as dst,
            capture_errors(),
        ):
            if state.marker is not None:
                applied = drain_to_marker(src, dst, state.marker)
            else:  # maintenance mode: the app is stopped; empty the log
                applied = 0
                while (batch := apply_batch(src, dst, CaptureSettings().schema).entries) > 0:
                    applied += batch
            sequences = sync_sequences(src, dst)
            keyless = copy_keyless_tables(src, dst)
            large_objects = sync_large_objects(src, dst)
            refreshed = sync_matviews(src, dst)  # after the tables: a view's query reads them
            restored = restore_constraints(dst)
        state.drained = applied + by_follower
        ctx.save()
        back = f", {restored} foreign keys back NOT VALID" if restored else ""
        back += f", {large_objects} large objects copied again" if large_objects else ""
        back += f", materialized views refreshed: {', '.join(refreshed)}" if refreshed else ""
        return (
            f"postgres: {state.drained} changes drained, {sequences} sequences, {keyless} tables without a key "
            f"copied{back}"
        )

    def _empty_log(self, marker: int | None, sources: Sources, targets: Targets) -> None:
        """After a copy made inside the freeze: what the log holds is in the copy already; applied again
        (harmless), it leaves the log empty, as the witness expects it before the switch."""
        with (
            connect_source(sources.database_url) as src,
            connect_target(targets.database_url) as dst,
            capture_errors(),
        ):
            prepare_target(dst)
            if marker is not None:
                drain_to_marker(src, dst, marker)
            while apply_batch(src, dst, CaptureSettings().schema).entries:
                pass

    def stop_following(self, ctx: RunContext) -> str:
        return "postgres follow stopped" if self.follower(ctx).stop() else ""

    def finish_target(self, ctx: RunContext, targets: Targets) -> str:
        if not ctx.config.migration.capture:
            return ""
        with connect_target(targets.database_url) as dst, capture_errors():
            validated = validate_constraints(dst)
            forget_follow(dst)  # its record of applied batches and keys: the run is over
        return f"{validated} foreign keys validated on the target" if validated else ""

    def cleanup(self, ctx: RunContext, sources: Sources) -> str:
        if not ctx.config.migration.capture:
            return ""
        rolling_back = "rollback" in ctx.state.phases
        # After the switch nobody writes to the old database: waiting on its locks holds no one up, and
        # a wait past deadlock_timeout makes an autovacuum of a big table give way (a short one never does).
        patient = CaptureSettings(lock_timeout_ms=5000, attempts=10)
        try:
            tables = remove_capture(sources.database_url, CaptureSettings() if rolling_back else patient)
        except PreconditionError as exc:
            if not rolling_back:
                raise
            # The app is back on the source: the rollback stands; capture comes off later.
            return f"change capture is still on the source ({exc.message}); `ferry pg capture remove` takes it off"
        if ctx.state.frozen and ctx.state.freeze_mode == "fence":
            # The fence went with capture; the old database must stay closed to a dyno still on its
            # URL (as in the read-only freeze) until rollback reopens it.
            set_read_only(sources.database_url, True)
            return f"change capture removed from the source ({tables} tables); the app's role is read-only there now"
        return f"change capture removed from the source ({tables} tables)"

    def forget_copy(self, ctx: RunContext) -> None:
        state = self.state(ctx)
        state.recopy, state.copy_started = state.copy_started, False
        # The next final sync copies anew: the live verify's position says nothing about that copy, and
        # the next freeze takes its own witness.
        state.verified_through, state.deferred_ranges, state.witness = None, [], None


_FOLLOW_READY_SECONDS = 600
#: Close enough to freeze: the drain inside the freeze applies what is left in well under a second.
_CAUGHT_UP_ENTRIES = 2000


def _sync_sequences(sources: Sources, targets: Targets) -> None:
    # nextval() takes no write the fence could refuse: a sequence the app moved since comes again.
    with connect_source(sources.database_url) as src, connect_target(targets.database_url) as dst, capture_errors():
        sync_sequences(src, dst)


def _caught_up(status: FollowerStatus) -> bool:
    return status.phase == "live" and status.queued <= _CAUGHT_UP_ENTRIES


def _wait_caught_up(ctx: RunContext, follower: Follower) -> FollowerStatus:
    """The follower's status once it has caught up; :raises FollowerError: it died, or did not in time."""
    deadline = time.monotonic() + ctx.config.migration.catch_up_seconds
    while (status := follower.status()) is None or not _caught_up(status):
        if not follower.alive():
            # Died of DDL on the source? The catalogs say so the same way the live pass would.
            refuse_schema_changes(parse_url(ctx.sources().database_url, "source"),
                                  parse_url(ctx.targets().database_url, "target"))  # fmt: skip
            raise FollowerError(f"postgres follow stopped: {follower.last_line()}")
        if time.monotonic() > deadline:
            behind = f"{status.queued} changes waiting" if status else "no status"
            raise FollowerError(
                f"postgres follow did not catch up in {ctx.config.migration.catch_up_seconds:g} s ({behind}); "
                "the app writes faster than the target applies: run again later, or raise catchUpSeconds"
            )
        time.sleep(0.2)
    return status


def _repair_capture(source_url: str) -> None:
    if capture_status(source_url).problems:
        remove_capture(source_url)
    ensure_capture(source_url)


def _start_follower(follower: Follower, sources: Sources, targets: Targets) -> int:
    """The follow as a detached worker; returns its pid once live. The final sync puts the foreign keys back."""
    job = PostgresFollowJob(sources.database_url, targets.database_url, follower.status_file)
    return follower.start(job, ready_phase="live", timeout=_FOLLOW_READY_SECONDS)


def _copy(options: CopyOptions, progress: ProgressSink, *, resume: bool) -> CopyResult | None:
    """Copy, resuming an earlier attempt when there was one; ``None`` when that attempt had finished."""
    if not resume:
        return copy_database(options, progress)
    try:
        return copy_database(replace(options, resume=True), progress)
    except ResumeError:
        # Nothing to resume: the earlier attempt had finished, or never began writing (the target says which).
        if not target_is_empty(options.target_url):
            return None
        return copy_database(options, progress)


def _jobs(ctx: RunContext) -> int:
    return ctx.settings.jobs or ctx.config.migration.jobs
