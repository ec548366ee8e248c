"""``ferry pg follow`` (and ``ferry pg copy --follow``): apply the change log until stopped.

Batches are applied one after the other (:func:`~migration.postgres.capture.apply.apply_batch`);
between them the follower reports its lag (entries waiting, the oldest one's age, rows per
second) on the progress display and, every second, in a status file shaped like the live
Redis copy's (``consistent`` when no entry waits). It stops on request, after one last batch.
It also stops, with one line, when the source's tables change shape (no event triggers on
Heroku: a fingerprint of every table's columns is compared), and when the log outgrows its
cap on the source's disk: then capture is removed, so the source is safe whatever follows.
Killed at any point, it is started again and goes on: a batch is cleared from the log only
after the target committed it, and applying one twice changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from migration.errors import FerryError, PreconditionError, SourceChangedError
from migration.files import replace_file
from migration.postgres.capture.apply import apply_batch, prepare_target
from migration.postgres.capture.constraints import can_pause_per_batch, pause_constraints
from migration.postgres.capture.install import CaptureSettings, remove_capture, require_current_layout, schema_state
from migration.postgres.capture.status import log_stats
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import parse_url
from migration.progress import ProgressSink

__all__ = ["FollowOptions", "FollowResult", "follow_changes"]

_FINGERPRINT = r"""
SELECT format('%%I.%%I', n.nspname, c.relname),
       string_agg(a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
                  || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END, ', ' ORDER BY a.attnum)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'p', 'S') AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', '_heroku', '_ferry', %(schema)s)
   AND n.nspname NOT LIKE 'pg\_%%'
 GROUP BY 1
"""


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


def _fingerprint(conn: Conn, schema: str) -> dict[str, str]:
    return {str(r[0]): str(r[1] or "") for r in conn.execute(_FINGERPRINT, {"schema": schema})}


def _ddl_change(before: dict[str, str], now: dict[str, str]) -> str | None:
    for name in sorted(now.keys() - before.keys()):
        return f"{name} was created on the source"
    for name in sorted(before.keys() - now.keys()):
        return f"{name} was dropped on the source"
    for name in sorted(before):
        if before[name] != now[name]:
            return f"the columns of {name} changed on the source ({before[name]} → {now[name]})"
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
    """Apply the log to the target until *should_stop* (or ``options.seconds``), then one last batch.

    :raises SourceChangedError: a table was created, dropped or altered on the source.
    :raises PreconditionError: capture is not installed, or the log outgrew its cap (capture removed).
    """
    started = time.monotonic()
    source, target = parse_url(options.source_url, "source"), parse_url(options.target_url, "target")
    schema = options.capture.schema
    result = FollowResult()
    with connect(source, autocommit=True) as src, connect(target, autocommit=True) as dst:
        with pg_errors("source", source):
            if schema_state(src, schema) != "ours":
                raise PreconditionError(
                    "change capture is not installed: ferry pg capture install (before the copy)", side="source"
                )
            require_current_layout(src, schema)  # before a long follow, not at the fence
            shape = _fingerprint(src, schema)
        with pg_errors("target", target):
            prepare_target(dst)
            if not can_pause_per_batch(dst):
                # Batches cannot pause the target's foreign keys and triggers: they come off until the end.
                pause_constraints(dst)
        deadline = None if options.seconds is None else started + options.seconds
        last_report, rows_at_report, stopping, rate = 0.0, 0, False, 0.0
        progress.phase("follow")
        shape_checked = time.monotonic()

        def refuse_ddl() -> None:
            with pg_errors("source", source):
                change = _ddl_change(shape, _fingerprint(src, schema))
            if change is not None:
                _write_status(options.status_file, "failed", result.queued + 1, 0.0, 0.0)
                raise SourceChangedError(f"{change} while following: copy that table again, then follow", side="source")

        while True:
            if not stopping and (should_stop() or (deadline is not None and time.monotonic() >= deadline)):
                stopping = True
            # The tables' shape is read once a second, not before every batch: idle, the loop
            # turns ten times a second, and the query reads every column of every table.
            if time.monotonic() - shape_checked >= 1.0:
                refuse_ddl()
                shape_checked = time.monotonic()
            try:
                with pg_errors("target", target):
                    batch = apply_batch(src, dst, schema, limit=options.batch)
            except FerryError:
                refuse_ddl()  # a batch that fails after DDL names the DDL, not the failed statement
                raise
            result.entries += batch.entries
            result.rows += batch.rows
            result.batches += bool(batch.entries)
            now = time.monotonic()
            if batch.entries < options.batch or now - last_report >= 1.0:
                with pg_errors("source", source):
                    result.queued, log_bytes, oldest = log_stats(src, schema)
                    result.seconds_behind = oldest or 0.0
                if log_bytes > options.max_log_bytes:
                    remove_capture(options.source_url, options.capture)
                    _write_status(options.status_file, "failed", result.queued, result.seconds_behind, 0.0)
                    raise PreconditionError(
                        f"the change log reached {log_bytes} bytes, over its cap of {options.max_log_bytes}: "
                        "capture was removed to spare the source's disk; copy again",
                        side="source",
                    )
                if now - last_report >= 1.0:
                    rate = (result.rows - rows_at_report) / max(now - last_report, 1e-6) if last_report else 0.0
                if batch.entries or now - last_report >= 1.0:
                    # After every batch too: the freeze reads how far the follow had got as writes stopped.
                    _write_status(
                        options.status_file, "live", result.queued, result.seconds_behind, rate, result.entries
                    )
                if now - last_report >= 1.0:
                    last_report, rows_at_report = now, result.rows
                    progress.message(
                        f"follow: {result.entries} entries applied, {result.queued} waiting, "
                        f"{result.seconds_behind:.1f} s behind"
                    )
            if stopping and batch.entries < options.batch:
                break
            if batch.entries == 0:
                # Idle: wait a tenth of a second, but answer a stop at once (the freeze waits on it).
                for _ in range(5):
                    if not stopping and should_stop():
                        break
                    time.sleep(0.02)
    result.seconds = time.monotonic() - started
    _write_status(options.status_file, "stopped", result.queued, result.seconds_behind, 0.0, result.entries)
    return result
