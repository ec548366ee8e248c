"""``ferry pg follow`` (and ``ferry pg copy --follow``): apply the change log until stopped.

Batches are applied one after the other (:func:`~migration.postgres.capture.apply.apply_batch`);
between them the follower reports its lag (entries waiting, the oldest one's age, rows per
second) on the progress display and, every second, in a status file shaped like the live
Redis copy's (``consistent`` when no entry waits). Asked to stop, it applies at most one more
batch and ends (what is left stays in the log, for the drain or the next follower); at the end
of its ``seconds`` it applies everything logged by then, then ends (``seconds=0``: catch up once):
a writer faster than the apply cannot keep it going, and nothing logged before the end is left.
It also stops, with one line, when a table's identity or shape changes on the source (no event
triggers on Heroku: once a second every table's oid, name and columns are compared, and
capture's own triggers are checked to be the ones install made, enabled), and when the log
outgrows its cap on the source's disk: then capture is removed, so the source is safe whatever
follows. One follower at a time per log and per target (:mod:`.claim`). Killed at any point, it
is started again and goes on: a batch is cleared from the log only after the target committed
it, and applying one twice changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql

from migration.errors import FerryError, PreconditionError, SourceChangedError
from migration.files import replace_file
from migration.postgres.capture.apply import apply_batch, prepare_target
from migration.postgres.capture.claim import claimed
from migration.postgres.capture.constraints import can_pause_per_batch, pause_constraints, pause_replica_triggers
from migration.postgres.capture.install import CaptureSettings, remove_capture
from migration.postgres.capture.inventory import (
    capture_problems,
    require_complete,
    require_current_layout,
    schema_state,
)
from migration.postgres.capture.status import log_stats
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import parse_url
from migration.postgres.footprint import CAPTURE_LOG, CAPTURE_TABLES, in_capture
from migration.postgres.identity import refuse_same_database
from migration.postgres.matviews import matview_identities, refresh_matviews
from migration.postgres.origin import (
    copied_shape,
    copied_views,
    record_views,
    require_copied_after_install,
    source_shape,
)
from migration.progress import ProgressSink

__all__ = ["FollowOptions", "FollowResult", "follow_changes"]

# Keyed by oid: a table renamed, moved to another schema or rebuilt under its own name is a change too.
# Each column by its position too (dropped and added again under its name is a change), its collation,
# and its default or generation expression.


@dataclass(frozen=True)
class FollowOptions:
    """What the follower takes.

    :param seconds: stop by itself after this long (``None``: until asked).
    :param max_log_bytes: the log's cap on the source's disk; over it, capture is removed.
    """

    source_url: str
    target_url: str
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    batch: int = 5000
    status_file: Path | None = None
    seconds: float | None = None
    max_log_bytes: int = 10 << 30


@dataclass
class FollowResult:
    entries: int = 0
    rows: int = 0
    batches: int = 0
    queued: int = 0
    seconds_behind: float = 0.0
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "entries": self.entries,
            "rows": self.rows,
            "batches": self.batches,
            "queued": self.queued,
            "seconds_behind": round(self.seconds_behind, 3),
            "consistent": self.queued == 0,
            "seconds": round(self.seconds, 3),
        }


def _ddl_change(before: dict[int, tuple[str, str]], now: dict[int, tuple[str, str]]) -> str | None:
    names_before = {name for name, _ in before.values()}
    for oid in sorted(now.keys() - before.keys(), key=lambda o: now[o][0]):
        name = now[oid][0]
        if name in names_before:
            return f"{name} was rebuilt on the source (a new table under its name)"
        return f"{name} was created on the source"
    for oid in sorted(before.keys() - now.keys(), key=lambda o: before[o][0]):
        return f"{before[oid][0]} was dropped on the source"
    for oid in sorted(before, key=lambda o: before[o][0]):
        (name, columns), (new_name, new_columns) = before[oid], now[oid]
        if name != new_name:
            return f"{name} was renamed to {new_name} on the source"
        if columns != new_columns:
            return f"the columns of {name} changed on the source ({columns} → {new_columns})"
    return None


def _write_status(path: Path | None, phase: str, queued: int, behind: float, rate: float, applied: int = 0) -> None:
    if path is None:
        return
    data = {"phase": phase, "queued": queued, "seconds_behind": round(behind, 3), "consistent": queued == 0,
            "rows_per_second": round(rate, 1), "applied": applied, "at": time.time()}  # fmt: skip
    replace_file(path, json.dumps(data))


def follow_changes(
    options: FollowOptions, progress: ProgressSink, should_stop: Callable[[], bool] = lambda: False
) -> FollowResult:
    """Apply the log to the target until *should_stop* (then at most one more batch), or for
    ``options.seconds`` (then what is waiting).

    :raises SourceChangedError: a table was created, dropped, rebuilt, renamed or altered on the source,
        or capture's triggers on one were disabled, dropped or replaced.
    :raises PreconditionError: capture is not installed or does not cover every table, another
        follower holds the log or the target, or the log outgrew its cap (capture removed).
    """
    started = time.monotonic()
    source, target = parse_url(options.source_url, "source"), parse_url(options.target_url, "target")
    schema = options.capture.schema
    result = FollowResult()
    with connect(source, autocommit=True) as src, connect(target, autocommit=True) as dst:
        with pg_errors("target", target):
            # Before anything is written: pointed at its own source, the follow would drop its foreign keys.
            refuse_same_database(src, dst, target)
        with pg_errors("source", source):
            if schema_state(src, schema) != "ours":
                raise PreconditionError(
                    "change capture is not installed: ferry pg capture install (before the copy)", side="source"
                )
            require_current_layout(src, schema)  # before a long follow, not at the fence
        with pg_errors("target", target), claimed(src, dst, schema):
            with pg_errors("source", source):
                require_complete(src, schema, "following")
                shape = source_shape(src)
            require_copied_after_install(src, dst, schema)
            # DDL while no follower ran (after the copy, or while a killed one was down) counts as DDL under it.
            if (copied := copied_shape(dst)) is not None and (change := _ddl_change(copied, shape)) is not None:
                raise SourceChangedError(f"{change} since the copy: copy again, then follow", side="source")
            prepare_target(dst)
            if not can_pause_per_batch(dst):
                # Batches cannot pause the target's foreign keys and triggers: they come off until the end.
                pause_constraints(dst)
            else:
                pause_replica_triggers(dst)  # those the batches' replica role does not pause
            _Loop(options, progress, src, dst, result, shape).run(should_stop, started)
    result.seconds = time.monotonic() - started
    _write_status(options.status_file, "stopped", result.queued, result.seconds_behind, 0.0, result.entries)
    return result


class _Loop:
    """The follow's batches, reports and once-a-second checks on the source."""

    def __init__(
        self,
        options: FollowOptions,
        progress: ProgressSink,
        src: Conn,
        dst: Conn,
        result: FollowResult,
        shape: dict[int, tuple[str, str]],
    ) -> None:
        self.options, self.progress, self.src, self.dst, self.result = options, progress, src, dst, result
        self.schema = options.capture.schema
        self.shape = shape
        self.source = parse_url(options.source_url, "source")
        self.target = parse_url(options.target_url, "target")
        # A REFRESH on the source gives its materialized view a new relfilenode: refreshed on the target
        # too, once the log has caught up with the rows it read (the freeze compares them all again).
        # Against what the target records of it, so a refresh while no follower ran is seen too.
        self.matviews = copied_views(dst)
        self.seen_views: dict[str, tuple[int, bool]] = {}
        self.refresh: set[str] = set()

    def check_source(self) -> None:
        """:raises SourceChangedError: a table's identity or shape changed, or capture no longer covers one."""
        with pg_errors("source", self.source):
            change = _ddl_change(self.shape, source_shape(self.src))
            problems = [] if change else capture_problems(self.src, self.schema)
            views = matview_identities(self.src)
        if change is None and problems:
            change = problems[0]
        if change is not None:
            _write_status(self.options.status_file, "failed", self.result.queued + 1, 0.0, 0.0)
            raise SourceChangedError(f"{change} while following: copy again, then follow", side="source")
        self.refresh |= {
            name for name, state in views.items() if name in self.matviews and self.matviews[name] != state
        }
        self.seen_views = views
        self.copy_rewritten()

    def copy_rewritten(self) -> None:
        """A table's storage rewritten by DDL that keeps its columns (ALTER COLUMN … TYPE … USING, SET
        EXPRESSION) changes every row without a row trigger firing: it is copied again whole, as after a
        TRUNCATE (an entry in the log says so). Compared with what capture recorded, so a rewrite while
        no follower ran is caught too."""
        captured, log = in_capture(self.schema, CAPTURE_TABLES), in_capture(self.schema, CAPTURE_LOG)
        with pg_errors("source", self.source), self.src.transaction():
            rows = self.src.execute(
                sql.SQL(
                    "UPDATE {captured} k SET storage = c.relfilenode FROM pg_catalog.pg_class c "
                    "WHERE c.oid = k.rel AND k.key_columns <> '{{}}' AND k.storage IS DISTINCT FROM c.relfilenode "
                    "RETURNING k.rel"
                ).format(captured=captured)
            ).fetchall()
            if rows:
                self.src.execute(
                    sql.SQL("INSERT INTO {} (rel, op) SELECT unnest(%s::oid[]), 'T'").format(log),
                    ([int(r[0]) for r in rows],),
                )

    def run(self, should_stop: Callable[[], bool], started: float) -> None:
        options, result = self.options, self.result
        deadline = None if options.seconds is None else started + options.seconds
        last_report, rows_at_report, rate = 0.0, 0, 0.0
        self.progress.phase("follow")
        checked = 0.0  # checked before the first batch too: a follow of one batch sees what changed meanwhile
        horizon: int | None = None  # the log's last entry as the time ran out: applied up to it, then out
        while True:
            # Asked to stop: one more batch at most, then out (the rest stays in the log).
            stopping = should_stop()
            # Its time is up: what waits now is applied, then out.
            finishing = deadline is not None and time.monotonic() >= deadline
            if finishing and horizon is None:
                horizon = self.last_logged()
            # The source is checked once a second, not before every batch: idle, the loop turns ten
            # times a second, and the query reads every column of every table.
            if time.monotonic() - checked >= 1.0:
                self.check_source()
                checked = time.monotonic()
            try:
                batch = apply_batch(self.src, self.dst, self.schema, limit=options.batch)
            except FerryError:
                self.check_source()  # a batch that fails after DDL names the DDL, not the failed statement
                raise
            result.entries += batch.entries
            result.rows += batch.rows
            result.batches += bool(batch.entries)
            if self.refresh and batch.entries < options.batch:
                self.refresh_views()
            now = time.monotonic()
            if batch.entries < options.batch or now - last_report >= 1.0 or stopping:
                self.measure()
                if now - last_report >= 1.0:
                    rate = (result.rows - rows_at_report) / max(now - last_report, 1e-6) if last_report else 0.0
                if batch.entries or now - last_report >= 1.0:
                    # After every batch too: the freeze reads how far the follow had got as writes stopped.
                    _write_status(options.status_file, "live", result.queued, result.seconds_behind, rate,
                                  result.entries)  # fmt: skip
                if now - last_report >= 1.0:
                    last_report, rows_at_report = now, result.rows
                    self.progress.message(
                        f"follow: {result.entries} entries applied, {result.queued} waiting, "
                        f"{result.seconds_behind:.1f} s behind"
                    )
            # Past the deadline, what was logged by then is applied and no more: against a writer faster than
            # the apply, "what waits" would never run out.
            if stopping or (finishing and (batch.entries < options.batch or not self.logged_through(horizon))):
                return
            if batch.entries == 0:
                # Idle: wait a tenth of a second, but answer a stop at once (the freeze waits on it).
                for _ in range(5):
                    if should_stop():
                        break
                    time.sleep(0.02)

    def last_logged(self) -> int:
        """The id of the log's last entry (0: empty). An entry committed later with a lower id is applied too."""
        log = in_capture(self.schema, CAPTURE_LOG)
        with pg_errors("source", self.source):
            row = self.src.execute(sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(log)).fetchone()
        return int(row[0]) if row else 0

    def logged_through(self, horizon: int | None) -> bool:
        """Whether the log still holds an entry up to *horizon*."""
        log = in_capture(self.schema, CAPTURE_LOG)
        with pg_errors("source", self.source):
            row = self.src.execute(
                sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE id <= %s)").format(log), (horizon or 0,)
            ).fetchone()
        return bool(row and row[0])

    def refresh_views(self) -> None:
        """The views refreshed on the source since, refreshed (or emptied) on the target the same way."""
        filled = sorted(n for n in self.refresh if self.seen_views[n][1])
        refresh_matviews(self.dst, filled, self.target)
        with pg_errors("target", self.target):
            for name in sorted(self.refresh - set(filled)):
                self.dst.execute(f"REFRESH MATERIALIZED VIEW {name} WITH NO DATA")
            record_views(self.dst, {name: self.seen_views[name] for name in self.refresh})
            self.matviews.update({name: self.seen_views[name] for name in self.refresh})
        self.progress.message(f"follow: materialized views refreshed: {', '.join(sorted(self.refresh))}")
        self.refresh = set()

    def measure(self) -> None:
        """The log's length and age; over its cap, capture comes off and the follow stops."""
        result, options = self.result, self.options
        with pg_errors("source", self.source):
            result.queued, log_bytes, oldest = log_stats(self.src, self.schema)
            result.seconds_behind = oldest or 0.0
        if log_bytes > options.max_log_bytes:
            remove_capture(options.source_url, options.capture)
            _write_status(options.status_file, "failed", result.queued, result.seconds_behind, 0.0)
            raise PreconditionError(
                f"the change log reached {log_bytes} bytes, over its cap of {options.max_log_bytes}: "
                "capture was removed to spare the source's disk; copy again",
                side="source",
            )
