"""PostgreSQL copied while the app writes, and followed by change capture (``migration.capture``).

Capture goes on the source before the copy's snapshot; the copy runs; a worker follows the log
into the target; ``catch-up`` waits for it and checksums everything while live; inside the freeze
the follower stops, the log is drained to the fence's marker with what no trigger sees
(:func:`~migration.postgres.drain_frozen`), only what changed since the live pass is compared, and
the witness taken as writes stopped is proved before the switch.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial

from migration.errors import FollowerError, PreconditionError
from migration.postgres import (
    CaptureSettings,
    CopyOptions,
    DatabaseVerifyReport,
    DeferredRange,
    Witness,
    apply_batch,
    await_copied_constraints,
    capture_errors,
    capture_status,
    connect_source,
    connect_target,
    copy_database,
    drain_frozen,
    drain_to_marker,
    ensure_capture,
    fence_with_passage,
    forget_follow,
    parse_url,
    prepare_target,
    read_identity,
    refuse_schema_changes,
    remove_capture,
    set_read_only,
    take_witness,
    validate_constraints,
    verify_changes,
    verify_frozen,
    verify_live,
)
from migration.progress import PlainProgress
from migration.runbook.follower import Follower, FollowerStatus
from migration.runbook.stores import postgres_back
from migration.runbook.stores.base import ProgressFor, StoreVerify
from migration.runbook.stores.postgres_strategy import (
    PostgresRun,
    PostgresStrategy,
    copy_resuming,
    sync_sequences_between,
    writable_to,
)
from migration.worker import PostgresFollowJob

__all__ = ["CaptureAndFollow", "repair_capture"]

_FOLLOW_READY_SECONDS = 600
#: Close enough to freeze: the drain inside the freeze applies what is left in well under a second.
_CAUGHT_UP_ENTRIES = 2000


class CaptureAndFollow(PostgresStrategy):
    """Copy and follow while live; inside the freeze, drain and compare what changed."""

    def copy_live(self, run: PostgresRun) -> str:
        follower = run.follower()
        if follower.alive():
            return f"postgres: following the change log (pid {follower.pid})"
        state = run.state
        # Copied anew (a move started again after its rollback): the target holds only an earlier attempt's
        # copy, emptied by this one; until it has begun, an interrupted attempt starts over, never resumes.
        recopy = state.recopy
        resume, state.copy_started = state.copy_started and not recopy, True
        if not resume:
            # Capture goes in before the copy's snapshot: every later change is then in the log (an
            # install that was interrupted is finished, tables created since get their triggers).
            ensure_capture(run.from_side.url)
        run.save()
        helpers = run.config.helpers
        options = CopyOptions(run.from_side.url, run.to_side.url, jobs=run.config.jobs, shared=helpers > 0,
                              helpers=helpers, clean=recopy)  # fmt: skip
        copied = copy_resuming(options, PlainProgress(unit="bytes"), resume=resume)
        if recopy:
            state.recopy = False
            run.save()
        if copied is not None and copied.not_valid_foreign_keys:
            with connect_target(run.to_side.url) as dst, capture_errors():
                await_copied_constraints(dst, copied.not_valid_foreign_keys)  # validated at cleanup
        return f"postgres: copied, following the change log (pid {_start_follower(run, follower)})"

    def live_status(self, run: PostgresRun) -> FollowerStatus | None:
        return run.follower().status()

    def catch_up(self, run: PostgresRun) -> str:
        """Wait until the follow has caught up, then the full checksum pass while the app writes."""
        follower = run.follower()
        if not follower.alive():
            # It died since the copy (a crash of the machine, a kill, DDL on the source). DDL is named the
            # way the live pass names it, whichever saw it first; otherwise the log kept every change: go on.
            _refuse_schema_changes(run)
            _start_follower(run, follower)
        status = _wait_caught_up(run, follower)
        detail = f"postgres: caught up ({status.queued} changes waiting, {status.seconds_behind:.1f} s behind)"
        if not run.config.full_verify:
            return detail
        live = verify_live(run.from_side.url, writable_to(run), jobs=run.config.jobs)
        state = run.state
        state.verified_through = live.through
        state.deferred_ranges = [[r.table, r.label, r.where] for r in live.deferred]
        run.save()
        # The pass may take minutes on a big database: what the app wrote meanwhile is applied now, not
        # drained inside the freeze.
        status = _wait_caught_up(run, follower)
        return (
            f"{detail}; verified live: {live.report.rows_checked} rows in {live.report.ranges_checked} key ranges, "
            f"{len(live.deferred)} ranges left to the freeze; {status.queued} changes waiting after it"
        )

    def writes_stopped(self, run: PostgresRun) -> str:
        """The witness of the source as its writes stopped (the fence takes its own)."""
        if run.freeze.in_force == "fence":
            return ""
        with connect_source(run.from_side.url) as conn, capture_errors():
            witness = take_witness(conn, read_identity(conn))
        run.state.witness = witness.to_json()
        run.save()
        return ""

    def final_sync(self, run: PostgresRun, progress_for: ProgressFor) -> str:
        state = run.state
        if not state.recopy:
            return self._drain(run)
        # The app wrote to the source after an earlier final copy (a failed verify unfroze it, and the
        # follower was not there to follow): copied again, and the log emptied of what the copy holds.
        state.copy_started = True
        run.save()
        options = CopyOptions(source_url=run.from_side.url, target_url=run.to_side.url, jobs=run.config.jobs)
        progress = progress_for("bytes")
        try:
            again = copy_database(replace(options, clean=True), progress)
        finally:
            progress.close()
        _empty_log(run)
        state.recopy = False
        run.save()
        return f"postgres: {again.rows} rows in {len(again.tables)} tables (copied again)"

    def verify(self, run: PostgresRun) -> list[StoreVerify]:
        state = run.state
        sync_sequences_between(run)
        if state.verified_through is None:
            return super().verify(run)
        # The live pass checked everything; what changed since is compared (the module says why that is enough).
        changes = partial(
            verify_changes,
            run.from_side.url,
            run.to_side.url,
            through=state.verified_through,
            deferred=tuple(DeferredRange(*r) for r in state.deferred_ranges),
            jobs=run.config.jobs,
        )
        # Both only read, and the witness does not trust the log the other relies on: side by side.
        with ThreadPoolExecutor(1) as pool:
            proof = pool.submit(_proof, run)
            return [StoreVerify.of(run.name, _sequences_moved_on(run, changes())), *proof.result()]

    def prove_frozen(self, run: PostgresRun) -> list[StoreVerify]:
        """The verify of what changed trusts the change log; the witness the freeze took does not."""
        if run.state.witness is None:
            return []
        # The sequences are written on the target and the proof only reads: side by side.
        with ThreadPoolExecutor(1) as pool:
            synced = pool.submit(sync_sequences_between, run)
            proof = _proof(run)
            synced.result()
        return proof

    def finish_target(self, run: PostgresRun) -> str:
        with connect_target(writable_to(run)) as dst, capture_errors():
            validated = validate_constraints(dst)
            forget_follow(dst)  # its record of applied batches and keys: the run is over
        return f"{validated} foreign keys validated on the target" if validated else ""

    def prepare_back(self, run: PostgresRun) -> str:
        return postgres_back.prepare_back(run)

    def begin_back(self, run: PostgresRun) -> str:
        return postgres_back.begin_back(run)

    def follow_back(self, run: PostgresRun) -> str:
        return postgres_back.follow_back(run)

    def close_old(self, run: PostgresRun) -> str:
        return postgres_back.close_old(run)

    def finish(self, run: PostgresRun) -> str:
        return postgres_back.finish(run)

    def cleanup(self, run: PostgresRun) -> str:
        rolling_back = run.rolling_back
        if run.state.back_since is not None and not rolling_back:
            # Capture on the old database is its fence now, with the follow back's passage: `finish` takes it off.
            return "change capture stays on both sides for the follow back (ferry finish takes it off)"
        # After the switch nobody writes to the old database: waiting on its locks holds no one up, and
        # a wait past deadlock_timeout makes an autovacuum of a big table give way (a short one never does).
        patient = CaptureSettings(lock_timeout_ms=5000, attempts=10)
        if rolling_back and run.state.back_since is not None:
            # Capture on the target (the follow back's) stays, fenced for everyone: no dyno writes where nobody reads.
            with connect_target(run.to_side.url) as new, capture_errors(), contextlib.suppress(PreconditionError):
                fence_with_passage(new, None)  # refused where capture is gone from it: nothing to fence with
        try:
            tables = remove_capture(run.from_side.url, CaptureSettings() if rolling_back else patient)
        except PreconditionError as exc:
            if not rolling_back:
                raise
            # The app is back on the source: the rollback stands; capture comes off later.
            return f"change capture is still on the source ({exc.message}); `ferry pg capture remove` takes it off"
        if run.freeze.frozen and run.freeze.in_force == "fence":
            # The fence went with capture; the old database must stay closed to a dyno still on its
            # URL (as in the read-only freeze) until rollback reopens it.
            set_read_only(run.from_side.url, True)
            return f"change capture removed from the source ({tables} tables); the app's role is read-only there now"
        return f"change capture removed from the source ({tables} tables)"

    def _drain(self, run: PostgresRun) -> str:
        """Inside the freeze: the follower's last batch, then the log to the fence's marker and the rest."""
        follower = run.follower()
        follower.drain(_FOLLOW_READY_SECONDS)
        state = run.state
        last = follower.status()
        # What the follower applied after the freeze began is drained inside it too.
        by_follower = max(0, last.applied - int(state.lag_at_freeze.get("applied", last.applied))) if last else 0
        with (
            connect_source(run.from_side.url) as src,
            connect_target(writable_to(run)) as dst,
            capture_errors(),
        ):
            drained = drain_frozen(src, dst, state.marker)  # no marker: maintenance mode, the app is stopped
        state.drained = drained.applied + by_follower
        run.save()
        return "postgres: " + replace(drained, applied=state.drained).summary()


def repair_capture(source_url: str) -> None:
    """Capture made whole again (taken off first when broken): the fence needs every table's triggers."""
    if capture_status(source_url).problems:
        remove_capture(source_url)
    ensure_capture(source_url)


def _proof(run: PostgresRun) -> list[StoreVerify]:
    if run.state.witness is None:
        return []
    report = verify_frozen(run.from_side.url, run.to_side.url, Witness.from_json(run.state.witness))
    return [StoreVerify.of(f"{run.name}:witness", report)]


def _sequences_moved_on(run: PostgresRun, report: DatabaseVerifyReport) -> DatabaseVerifyReport:
    """A sequence behind on the target and nothing else different: ``nextval()`` (an app that takes its ids
    before its inserts) is no write the fence can refuse, and a sequence moved since the sync says nothing of
    the rows. Synced again now, and once more right before the switch (``prove_frozen``), which is what holds."""
    moved = [d for d in report.differences if d.kind == "sequence" and d.target.endswith("(behind)")]
    if not moved or len(moved) != report.differences_total:
        return report
    sync_sequences_between(run)
    report.differences, report.differences_total = [], 0
    report.notes.append(
        f"{len(moved)} sequences moved on the source during the verify (nextval, which the fence cannot refuse): "
        "synced again, and once more right before the switch"
    )
    return report


def _empty_log(run: PostgresRun) -> None:
    """After a copy made inside the freeze: what the log holds is in the copy already; applied again
    (harmless), it leaves the log empty, as the witness expects it before the switch."""
    with connect_source(run.from_side.url) as src, connect_target(run.to_side.url) as dst, capture_errors():
        prepare_target(dst)
        if run.state.marker is not None:
            drain_to_marker(src, dst, run.state.marker)
        while apply_batch(src, dst, CaptureSettings().schema).entries:
            pass


def _caught_up(status: FollowerStatus) -> bool:
    return status.phase == "live" and status.queued <= _CAUGHT_UP_ENTRIES


def _wait_caught_up(run: PostgresRun, follower: Follower) -> FollowerStatus:
    """The follower's status once it has caught up; :raises FollowerError: it died, or did not in time."""
    waits = run.config.catch_up_seconds
    deadline = time.monotonic() + waits
    while (status := follower.status()) is None or not _caught_up(status):
        if not follower.alive():
            _refuse_schema_changes(run)  # died of DDL on the source? The catalogs say so.
            raise FollowerError(f"postgres follow stopped: {follower.last_line()}")
        if time.monotonic() > deadline:
            behind = f"{status.queued} changes waiting" if status else "no status"
            raise FollowerError(
                f"postgres follow did not catch up in {waits:g} s ({behind}); "
                "the app writes faster than the target applies: run again later, or raise catchUpSeconds"
            )
        time.sleep(0.2)
    return status


def _refuse_schema_changes(run: PostgresRun) -> None:
    """:raises SourceChangedError: the source's catalogs differ from the target's (the live pass's words)."""
    refuse_schema_changes(parse_url(run.from_side.url, "source"), parse_url(run.to_side.url, "target"))


def _start_follower(run: PostgresRun, follower: Follower) -> int:
    """The follow as a detached worker; returns its pid once live. The final sync puts the foreign keys back."""
    job = PostgresFollowJob(run.from_side.url, writable_to(run), follower.status_file)
    return follower.start(job, ready_phase="live", timeout=_FOLLOW_READY_SECONDS)
