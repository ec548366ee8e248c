"""Splitting the copy into parts: whole tables, or ranges of a big table's ctid or key."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from migration.postgres.catalog import Conn, TableInfo

__all__ = ["Part", "plan_parts"]


@dataclass(frozen=True)
class Part:
    """One unit of data copy: a whole table, or one range of it.

    :param key: stable name used for the done marker (``schema.table#i``).
    :param predicate: SQL ``WHERE`` condition selecting the range, ``None`` for all rows.
    :param freeze: the part is a whole table, truncated and loaded with ``COPY … FREEZE``.
    """

    key: str
    table: str
    index: int
    count: int
    predicate: str | None
    freeze: bool
    est_bytes: int
    priority: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Part:
        return cls(**data)


def _ranges(count: int) -> list[tuple[int | None, int | None]]:
    return [(None if i == 0 else i, None if i == count - 1 else i + 1) for i in range(count)]


def _ctid_parts(table: TableInfo, count: int) -> list[str]:
    step = math.ceil(table.pages / count)
    predicates = []
    for lo, hi in _ranges(count):
        conds = []
        if lo is not None:
            conds.append(f"ctid >= '({lo * step},0)'::tid")
        if hi is not None:
            conds.append(f"ctid < '({hi * step},0)'::tid")
        predicates.append(" AND ".join(conds))
    return predicates


def _key_parts(conn: Conn, table: TableInfo, count: int) -> list[str] | None:
    assert table.int_key is not None
    row = conn.execute(f"SELECT min({table.int_key}), max({table.int_key}) FROM {table.qualified_name}").fetchone()
    if row is None or row[0] is None:
        return None
    low, high = int(row[0]), int(row[1])
    step = max(1, math.ceil((high - low + 1) / count))
    predicates = []
    for lo, hi in _ranges(count):
        conds = []
        if lo is not None:
            conds.append(f"{table.int_key} >= {low + lo * step}")
        if hi is not None:
            conds.append(f"{table.int_key} < {low + hi * step}")
        predicates.append(" AND ".join(conds))
    return predicates


# Automatic splitting leaves tables under this size whole, whatever the job count.
AUTO_SPLIT_MIN_BYTES = 256 * 1024 * 1024


def split_count(table: TableInfo, total_work: float, jobs: int, split_bytes: int | None) -> int:
    """How many ranges to cut *table* into.

    Whole tables load with ``COPY FREEZE``, which saves every later reader (the index
    builds first) from setting hint bits on each page, so splitting has a cost. Left
    automatic (``None``), only a table whose work (rows plus index builds, see
    :attr:`TableInfo.priority`) exceeds a worker's fair share of all the work is split,
    so that it finishes early and its index builds overlap the other tables' copies
    instead of trailing after them.
    """
    if split_bytes is None:
        fair_share = total_work / max(1, jobs)
        if jobs < 2 or table.bytes < AUTO_SPLIT_MIN_BYTES or table.priority <= fair_share:
            return 1
        return min(jobs, 64, math.ceil(table.priority / fair_share))
    if split_bytes <= 0:
        return 1
    return min(64, math.ceil(table.bytes / split_bytes))


def plan_parts(
    conn: Conn, tables: list[TableInfo], split_bytes: int | None, server_major: int, jobs: int
) -> list[Part]:
    """Parts for *tables*, the longest critical path (rows plus index builds) first.

    ctid ranges (fast TID range scans, PostgreSQL 14+) are preferred; older servers
    split by an integer primary key; a table with neither is copied whole.
    """
    total_work = sum(t.priority for t in tables)
    parts: list[Part] = []
    for table in tables:
        count = split_count(table, total_work, jobs, split_bytes)
        predicates: list[str] | None = None
        if count > 1 and server_major >= 14 and table.pages >= count:
            predicates = _ctid_parts(table, count)
        elif count > 1 and table.int_key is not None:
            predicates = _key_parts(conn, table, count)
        if not predicates:
            parts.append(
                Part(f"{table.qualified_name}#0", table.qualified_name, 0, 1, None, True, table.bytes, table.priority)
            )
            continue
        for i, predicate in enumerate(predicates):
            share = table.bytes // len(predicates)
            parts.append(
                Part(f"{table.qualified_name}#{i}", table.qualified_name, i, len(predicates), predicate, False, share,
                     table.priority)
            )  # fmt: skip
    return sorted(parts, key=lambda p: (-p.priority, p.table, p.index))
