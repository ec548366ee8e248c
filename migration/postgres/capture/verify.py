"""Verification in proportion to the changes: a full pass while the app writes, then only what changed.

While the follow runs, every captured table is checksummed by key range, as ``ferry pg verify``
does. Source and target are read at slightly different moments, so a range that differs is
compared again leaving out the keys in flux (still in the source's log, or rewritten on the
target since the pass began), a few times; one that still differs is deferred to the freeze.
The keys the follow rewrote during that pass are then compared row by row, the same way.

A row found equal while live, and not rewritten on the target since, is still equal: the follow
records the keys of every batch it applies (``_ferry_follow.changed`` on the target). So inside
the freeze only these are compared again: the rows rewritten since the live pass, the deferred
ranges, the tables copied whole (no key, or truncated), the row counts of the tables not too big to
count, the catalogs, the sequences and the large objects (:mod:`.changes`). The time that takes
follows the writes made during the live pass, not the database's size.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import psycopg
from psycopg import sql

from migration.errors import SourceChangedError
from migration.postgres.capture.apply import key_rows, key_types, prepare_target, record_changes
from migration.postgres.capture.install import CaptureSettings
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import PgEndpoint, parse_url
from migration.postgres.footprint import CAPTURE_LOG, CAPTURE_TABLES, FOLLOW_CHANGED, in_capture
from migration.postgres.verify import (
    DatabaseVerifyReport,
    DataTable,
    SnapshotPair,
    compare_objects,
    key_ranges,
    open_snapshot,
    present_data_tables,
    range_checksum,
    row_count,
)

__all__ = ["DeferredRange", "LiveVerifyResult", "refuse_schema_changes", "verify_live"]

_KEYS_PER_QUERY = 5000


@dataclass(frozen=True)
class DeferredRange:
    """A key range that still differed while live: compared again inside the freeze."""

    table: str
    label: str
    where: str


@dataclass(frozen=True)
class LiveVerifyResult:
    """The live pass: its report, the position in the target's change record every row was
    checked through, and the ranges left to the freeze."""

    report: DatabaseVerifyReport
    through: int
    deferred: tuple[DeferredRange, ...]


class _Key(NamedTuple):
    """A captured table's key: its columns and their types (schema-qualified)."""

    columns: tuple[str, ...]
    types: tuple[str, ...]


def _captured_keys(src: Conn, schema: str) -> dict[str, _Key]:
    rows = src.execute(sql.SQL("SELECT name, key_columns FROM {}").format(in_capture(schema, CAPTURE_TABLES)))
    keys = {}
    for name, columns in rows.fetchall():
        try:
            keys[str(name)] = _Key(tuple(columns), key_types(src, str(name), list(columns)))
        except (LookupError, psycopg.errors.UndefinedTable):
            continue  # captured once, dropped or renamed since: not there to compare
    return keys


def _in_flux(
    source: PgEndpoint, target: PgEndpoint, schema: str, table: str, since: int
) -> list[dict[str, Any]] | None:
    """Keys of *table* whose rows may legitimately differ between two snapshots read a moment apart:
    named by an entry still in the source's log, or rewritten on the target since *since*.
    ``None``: the table is being copied again whole (a TRUNCATE), all of it is in flux.

    The log is read before the target's record: an entry cleared in between was recorded first."""
    keys: dict[str, dict[str, Any]] = {}
    with connect(source, autocommit=True) as src, pg_errors("source", source):
        logged = src.execute(
            sql.SQL(
                "SELECT l.op, l.old_key, l.new_key FROM {log} l JOIN {captured} c ON c.rel = l.rel WHERE c.name = %s"
            ).format(log=in_capture(schema, CAPTURE_LOG), captured=in_capture(schema, CAPTURE_TABLES)),
            (table,),
        ).fetchall()
    for op, old, new in logged:
        if op == "T":
            return None
        keys.update((json.dumps(k, sort_keys=True), k) for k in (old, new) if k is not None)
    with connect(target, autocommit=True) as dst, pg_errors("target", target):
        rewritten = _changed(dst, since, None, table).get(table, [])
    if rewritten is None:
        return None
    keys.update((json.dumps(k, sort_keys=True), k) for k in rewritten)
    return list(keys.values())


def _changed_through(dst: Conn) -> int:
    row = dst.execute(f"SELECT coalesce(max(id), 0) FROM {FOLLOW_CHANGED}").fetchone()
    return int(row[0]) if row else 0


def _changed(
    dst: Conn, after: int, through: int | None, table: str | None = None
) -> dict[str, list[dict[str, Any]] | None]:
    """Keys rewritten in ``(after, through]`` (of *table* only, if given), by table; ``None`` when the
    whole table was copied again."""
    query = f"SELECT rel, key FROM {FOLLOW_CHANGED} WHERE id > %s"
    params: list[object] = [after]
    if through is not None:
        query, params = query + " AND id <= %s", [*params, through]
    if table is not None:
        query, params = query + " AND rel = %s", [*params, table]
    found: dict[str, dict[str, dict[str, Any]] | None] = {}
    for rel, key in dst.execute(query, params):
        name = str(rel)
        if key is None:
            found[name] = None
        elif (keys := found.setdefault(name, {})) is not None:
            keys[json.dumps(key, sort_keys=True)] = key
    return {name: None if keys is None else list(keys.values()) for name, keys in found.items()}


def _row_hashes(conn: Conn, table: str, key: _Key, keys: list[dict[str, Any]]) -> dict[str, str]:
    """``{key as JSON text: hash of the row}`` for those of *keys* that exist."""
    columns = sql.SQL(", ").join(sql.SQL("__ferry_r.{}").format(sql.Identifier(c)) for c in key.columns)
    query = sql.SQL(
        "SELECT pg_catalog.json_build_array({cols})::text, pg_catalog.hashtextextended(__ferry_r::text, 0)::text "
        "FROM ONLY {t} AS __ferry_r WHERE ({cols}) IN ({rows})"
    ).format(cols=columns, t=sql.SQL(table), rows=key_rows(list(key.columns), key.types, sql.SQL("%s::jsonb")))
    out: dict[str, str] = {}
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = json.dumps(keys[start : start + _KEYS_PER_QUERY])
        out.update((str(r[0]), str(r[1])) for r in conn.execute(query, (chunk,)))
    return out


def _differing_keys(
    source: PgEndpoint, target: PgEndpoint, table: str, key: _Key, keys: list[dict[str, Any]]
) -> list[tuple[dict[str, Any], str, str]]:
    """``(key, source state, target state)`` of every one of *keys* whose rows differ.

    Both sides print the keys they find the same way (same query, same types), so the rows are
    matched by that text; a key neither side has is equal (deleted on both)."""
    with SnapshotPair(source, target) as (src, dst):
        with pg_errors("source", source):
            a = _row_hashes(src, table, key, keys)
        with pg_errors("target", target):
            b = _row_hashes(dst, table, key, keys)
    out = []
    for text in sorted(a.keys() | b.keys()):
        if a.get(text) != b.get(text):
            found = dict(zip(key.columns, json.loads(text), strict=True))
            out.append((found, "present" if text in a else "(missing)", "present" if text in b else "(missing)"))
    return out


def _without(where: str, key: _Key, keys: list[dict[str, Any]]) -> str:
    """*where*, leaving out the rows of *keys*."""
    if not keys:
        return where
    cols = ", ".join(sql.Identifier(c).as_string() for c in key.columns)
    literal = sql.SQL("{}::jsonb").format(sql.Literal(json.dumps(keys)))
    return f"({where}) AND ({cols}) NOT IN ({key_rows(list(key.columns), key.types, literal).as_string()})"


def _differing_ranges(
    source: PgEndpoint,
    target: PgEndpoint,
    ranges: list[DeferredRange],
    leave_out: Callable[[], tuple[_Key, list[dict[str, Any]]] | None] | None = None,
) -> tuple[list[tuple[DeferredRange, str, str]], int]:
    """The ranges whose checksums differ, with each side's ``count, sum``; and the rows read.

    :param leave_out: called once both snapshots are taken: ``(key columns, keys)`` whose rows are
        left out of every range (``None``: compare nothing)."""
    out, rows = [], 0
    with SnapshotPair(source, target) as (src, dst):
        excluded = None
        if leave_out is not None:
            with pg_errors("source", source):
                src.execute("SELECT 1")  # the snapshots are taken now, before what is in flux is read
            with pg_errors("target", target):
                dst.execute("SELECT 1")
            excluded = leave_out()
            if excluded is None:
                return [(item, "in flux", "in flux") for item in ranges], 0
        for item in ranges:
            where = item.where if excluded is None else _without(item.where, *excluded)
            with pg_errors("source", source):
                a = range_checksum(src, item.table, where)
            with pg_errors("target", target):
                b = range_checksum(dst, item.table, where)
            rows += a[0]
            if a != b:
                out.append((item, f"{a[0]} rows, {a[1]}", f"{b[0]} rows, {b[1]}"))
    return out, rows


def _table_ranges(source: PgEndpoint, table: DataTable) -> list[DeferredRange]:
    src = open_snapshot(source)
    try:
        with pg_errors("source", source):
            row = src.execute(
                "SELECT reltuples::bigint FROM pg_catalog.pg_class WHERE oid = %s::regclass", (table.name,)
            ).fetchone()
            rows = int(row[0]) if row else -1
            if rows <= 0:  # never analyzed: count
                rows = row_count(src, table.name)
            return [DeferredRange(table.name, label, where) for label, where in key_ranges(src, table, rows)]
    finally:
        src.close()


class _Pending:
    """Waits until the log entries written so far have been applied by the follow (and cleared)."""

    def __init__(self, source: PgEndpoint, schema: str, seconds: float) -> None:
        self.source, self.log, self.seconds = source, in_capture(schema, CAPTURE_LOG), seconds

    def wait(self) -> None:
        with connect(self.source, autocommit=True) as src, pg_errors("source", self.source):
            row = src.execute(sql.SQL("SELECT coalesce(max(id), 0) FROM {}").format(self.log)).fetchone()
            head = int(row[0]) if row else 0
            deadline = time.monotonic() + self.seconds
            query = sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE id <= %s)").format(self.log)
            while time.monotonic() < deadline:
                still = src.execute(query, (head,)).fetchone()
                if still is None or not still[0]:
                    return
                time.sleep(0.1)


def refuse_schema_changes(source: PgEndpoint, target: PgEndpoint) -> None:
    """The catalogs must already match while live; a difference is DDL on the source since the copy,
    which the follow does not carry. Sequences and large objects may differ: the freeze copies them."""
    scratch = DatabaseVerifyReport(mode="live")
    compare_objects(source, target, scratch, large_object_contents=False)
    changed = [d for d in scratch.differences if d.kind not in ("sequence", "large object")]
    if changed:
        first = changed[0]
        raise SourceChangedError(
            f"{first.kind} {first.name} differs: {first.source} on the source, {first.target} on the target "
            f"({len(changed)} differences): changed on the source since the copy? copy again, then follow",
            side="source",
        )


def verify_live(
    source_url: str,
    target_url: str,
    *,
    capture: CaptureSettings | None = None,
    jobs: int = 4,
    attempts: int = 4,
    wait_seconds: float = 10.0,
    on_table: Callable[[str], None] | None = None,
) -> LiveVerifyResult:
    """The full checksum pass, while the follow applies the log (it must be running).

    :param attempts: times a differing range or row is checked again, each after the entries
        pending at that moment were applied.
    :param wait_seconds: the longest wait for those entries each time.
    """
    started = time.monotonic()
    schema = (capture or CaptureSettings()).schema
    source, target = parse_url(source_url, "source"), parse_url(target_url, "target")
    report = DatabaseVerifyReport(mode="live")
    refuse_schema_changes(source, target)
    with connect(source, autocommit=True) as src, connect(target, autocommit=True) as dst:
        with pg_errors("target", target):
            prepare_target(dst)
            start = _changed_through(dst)
        with pg_errors("source", source):
            keys = _captured_keys(src, schema)
    pending = _Pending(source, schema, wait_seconds)
    tables = [t for t in present_data_tables(source, target) if t.name in keys]

    def check(table: DataTable) -> tuple[list[DeferredRange], int, int]:
        if on_table:
            on_table(table.name)
        ranges = _table_ranges(source, table)
        differing, rows = _differing_ranges(source, target, ranges)
        suspects = [item for item, _, _ in differing]
        for attempt in range(attempts):
            if not suspects:
                break
            if attempt:
                pending.wait()
            # The rows written meanwhile are left out (the row-by-row passes compare them).
            suspects = [
                item for item, _, _ in _differing_ranges(source, target, suspects, partial(flux, table.name))[0]
            ]
        return suspects, rows, len(ranges)

    def flux(name: str) -> tuple[_Key, list[dict[str, Any]]] | None:
        found = _in_flux(source, target, schema, name, start)
        return None if found is None else (keys[name], found)

    suspects: list[DeferredRange] = []
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for differing, rows, ranges in pool.map(check, tables):
            suspects += differing
            report.rows_checked += rows
            report.ranges_checked += ranges
    report.tables_checked = len(tables)

    # The rows the follow rewrote while the ranges were read: compared one by one, the same way.
    with connect(target, autocommit=True) as dst, pg_errors("target", target):
        through = _changed_through(dst)
        rewritten = _changed(dst, start, through)
    lasting: dict[str, list[dict[str, Any]] | None] = {}
    for name, changed in rewritten.items():
        if name not in keys:
            continue
        if changed is None:
            lasting[name] = None
            continue
        still = changed
        for _ in range(attempts + 1):
            still = [k for k, _, _ in _differing_keys(source, target, name, keys[name], still)]
            if not still:
                break
            pending.wait()
        if still:
            lasting[name] = still
        report.rows_checked += len(changed)
    with connect(target, autocommit=True) as dst, pg_errors("target", target):
        # Written after *through*: the freeze's pass compares these again.
        for name, changed in lasting.items():
            record_changes(dst, name, changed)
    if suspects or lasting:
        rows = sum(len(k) for k in lasting.values() if k is not None)
        report.notes.append(
            f"{len(suspects)} key ranges and {rows} rows were still changing while live: compared inside the freeze"
        )
    report.seconds = time.monotonic() - started
    return LiveVerifyResult(report, through, tuple(suspects))
