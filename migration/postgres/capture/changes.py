"""Inside the freeze, after the drain: what changed since the live pass, compared (see :mod:`.verify`).

Every millisecond here is one the app cannot write, and on small machines opening a connection
costs more than most of the queries: one snapshot of each side is opened first and carries the
catalogs, the keys the follow rewrote, and the row counts of the smaller tables; only the tables
too big for that (counted, or copied whole) get snapshots of their own, side by side.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from migration.postgres.capture.install import CaptureSettings
from migration.postgres.capture.inventory import schema_state
from migration.postgres.capture.verify import (
    DeferredRange,
    _captured_keys,
    _changed,
    _differing_ranges,
    _Key,
    _row_hashes,
)
from migration.postgres.catalog import Conn
from migration.postgres.connection import pg_errors
from migration.postgres.conninfo import PgEndpoint, parse_url
from migration.postgres.footprint import FOLLOW_CHANGED
from migration.postgres.verify import (
    DatabaseVerifyReport,
    DataTable,
    Difference,
    SnapshotPair,
    check_table,
    compare_objects_in,
    open_snapshot,
    row_count,
    verify_databases,
)

__all__ = ["COUNT_UP_TO", "verify_changes"]

#: Inside the freeze, tables up to this many rows (estimated) are counted again on both sides: a net under
#: what the witness and the capture's trigger identity already stop, kept where it costs the window little
#: (1 M rows counted on both sides took 0.3 s of a loaded 2-core machine's freeze).
COUNT_UP_TO = 250_000
#: Tables up to this many rows (estimated) are counted on the snapshots already open, one after the other.
_COUNT_ON_SHARED = 100_000
_ESTIMATED_ROWS = (
    "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), greatest(c.reltuples, 0)::bigint "
    "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm')"
)


def _records_kept(src: Conn, dst: Conn, source: PgEndpoint, target: PgEndpoint, schema: str) -> bool:
    """Capture still on the source and the follow's record of rewritten keys still on the target."""
    with pg_errors("source", source):
        if schema_state(src, schema) != "ours":
            return False
    with pg_errors("target", target):
        row = dst.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (FOLLOW_CHANGED,)).fetchone()
    return bool(row and row[0])


def _on_one_side(
    conn: Conn, side: PgEndpoint, tables: list[str], rows: dict[str, tuple[_Key, list[dict[str, Any]]]]
) -> tuple[list[int], dict[str, dict[str, str]]]:
    """On one snapshot: the row counts of *tables*, and the hashes of the rewritten *rows* by table."""
    with pg_errors(side.side, side):
        return [row_count(conn, t) for t in tables], {t: _row_hashes(conn, t, *kk) for t, kk in rows.items()}


def _count(side: PgEndpoint, table: str) -> int:
    # Writes are stopped and drained: each side is counted on its own, both at once.
    conn = open_snapshot(side)
    try:
        with pg_errors(side.side, side):
            return row_count(conn, table)
    finally:
        conn.close()


_Counts = dict[str, tuple["Future[int]", "Future[int]"]]


def _count_early(pool: ThreadPoolExecutor, source: PgEndpoint, target: PgEndpoint, names: list[str]) -> _Counts:
    """Both sides' counts of *names*, begun now: the biggest counts take longest, and nothing they read
    changes inside the freeze (a table the catalogs then find missing is not asked for)."""
    return {name: (pool.submit(_count, source, name), pool.submit(_count, target, name)) for name in names}


def _row_differences(name: str, key: _Key, a: dict[str, str], b: dict[str, str]) -> list[Difference]:
    """Rows matched by the text both sides print for their key; a key neither side has is equal."""
    out = []
    for text in sorted(a.keys() | b.keys()):
        if a.get(text) != b.get(text):
            found = json.dumps(dict(zip(key.columns, json.loads(text), strict=True)), sort_keys=True)
            state = ("present" if text in a else "(missing)", "present" if text in b else "(missing)")
            out.append(Difference("row", f"{name} key {found}", *state))
    return out


def verify_changes(
    source_url: str,
    target_url: str,
    *,
    through: int,
    deferred: tuple[DeferredRange, ...] = (),
    capture: CaptureSettings | None = None,
    jobs: int = 4,
    count_up_to: int | None = COUNT_UP_TO,
) -> DatabaseVerifyReport:
    """Inside the freeze, after the drain: what changed since the live pass.

    :param through: :attr:`~.verify.LiveVerifyResult.through` of the live pass.
    :param deferred: :attr:`~.verify.LiveVerifyResult.deferred` of the live pass.
    :param count_up_to: tables with more rows (estimated) are not counted again (``None``: all are).
    """
    started = time.monotonic()
    schema = (capture or CaptureSettings()).schema
    source, target = parse_url(source_url, "source"), parse_url(target_url, "target")
    report = DatabaseVerifyReport(mode="changes")
    with SnapshotPair(source, target) as (src, dst), ThreadPoolExecutor(4) as counting:
        # Without the records, the full compare runs after these snapshots are closed.
        kept = _records_kept(src, dst, source, target, schema)
        if kept:
            with pg_errors("source", source):
                keys = _captured_keys(src, schema)
                sizes = {str(r[0]): int(r[1]) for r in src.execute(_ESTIMATED_ROWS)}
            with pg_errors("target", target):
                rewritten = _changed(dst, through, None)
            up_to = count_up_to if count_up_to is not None else max(sizes.values(), default=0)
            early = _count_early(counting, source, target, [
                name for name in keys if _COUNT_ON_SHARED < sizes.get(name, 0) <= up_to and rewritten.get(name, 0) is not None
            ])  # fmt: skip
            # Large objects are not captured (no trigger sees them): their contents are compared whole.
            tables = compare_objects_in(src, dst, source, target, report, large_object_contents=True)
            # Whole tables: those without a key (copied again inside the freeze) and those truncated since.
            whole = [t for t in tables if t.name not in keys or (t.name in rewritten and rewritten[t.name] is None)]
            by_key = {name: (keys[name], k) for name, k in rewritten.items() if k is not None and name in keys}
            whole_names = {t.name for t in whole}
            present = {t.name for t in tables}
            ranges = [item for item in deferred if item.table in present and item.table not in whole_names]
            # Counting is the one check whose time grows with the data: tables past *count_up_to* rows keep
            # the counts their ranges had in the live pass, every change since compared key by key.
            counted = [
                t for t in tables if t not in whole and (count_up_to is None or sizes.get(t.name, 0) <= count_up_to)
            ]
            here = [t for t in counted if sizes.get(t.name, 0) <= _COUNT_ON_SHARED]
            apart = [t for t in counted if t not in here]
            counts = {
                t.name: early.get(t.name) or _count_early(counting, source, target, [t.name])[t.name] for t in apart
            }
            _compare_frozen(src, dst, source, target, report, whole, here, counts, by_key, ranges, jobs)
    if not kept:
        full = verify_databases(source_url, target_url, mode="full", jobs=jobs)
        full.notes.append("the record of what changed since the live pass is gone (capture removed): compared in full")
        return full
    rows = sum(len(k) for _, k in by_key.values())
    report.rows_checked += rows
    report.ranges_checked += len(ranges)
    report.tables_checked = len(tables)
    report.notes.append(
        f"compared since the live pass: {rows} rewritten rows, "
        f"{len(ranges)} key ranges, {len(whole)} whole tables; row counts of {len(counted)} of {len(tables)} tables"
        + (
            f" (the {len(tables) - len(whole) - len(counted)} with more than {count_up_to} rows were counted range by "
            "range in the live pass)"
            if len(tables) - len(whole) > len(counted)
            else ""
        )
    )
    report.seconds = time.monotonic() - started
    return report


def _compare_frozen(
    src: Conn,
    dst: Conn,
    source: PgEndpoint,
    target: PgEndpoint,
    report: DatabaseVerifyReport,
    whole: list[DataTable],
    here: list[DataTable],
    apart: _Counts,
    by_key: dict[str, tuple[_Key, list[dict[str, Any]]]],
    ranges: list[DeferredRange],
    jobs: int,
) -> None:
    """The comparisons: on the open snapshots (*here*, rewritten rows) and on snapshots of their own."""

    def whole_table(table: DataTable) -> tuple[list[Difference], int, int]:
        with SnapshotPair(source, target) as (s, d):
            return check_table(s, d, source, target, table, "full")

    names = [t.name for t in here]
    with ThreadPoolExecutor(max(1, jobs) * 2 + 2) as pool:
        on_source = pool.submit(_on_one_side, src, source, names, by_key)
        on_target = pool.submit(_on_one_side, dst, target, names, by_key)
        copied = pool.map(whole_table, whole)
        checked_ranges = pool.map(lambda item: _differing_ranges(source, target, [item]), ranges)
        (src_counts, src_rows), (dst_counts, dst_rows) = on_source.result(), on_target.result()
        for diffs, _rows, n in copied:
            report.add_all(diffs)
            report.ranges_checked += n
        counted = [(t, a.result(), b.result()) for t, (a, b) in apart.items()]
        for table, in_source, in_target in [*zip(names, src_counts, dst_counts, strict=True), *counted]:
            if in_source != in_target:
                report.add(Difference("row count", table, str(in_source), str(in_target)))
        for name in sorted(by_key):
            report.add_all(_row_differences(name, by_key[name][0], src_rows[name], dst_rows[name]))
        for differing, rows in checked_ranges:
            report.rows_checked += rows
            for item, a, b in differing:
                report.add(Difference("checksum", f"{item.table} {item.label}", a, b))
