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


def plan_parts(conn: Conn, tables: list[TableInfo], split_bytes: int, server_major: int) -> list[Part]:
    """Parts for *tables*, biggest first; tables over *split_bytes* are cut in ranges.

    ctid ranges (fast TID range scans, PostgreSQL 14+) are preferred; older servers
    split by an integer primary key; a table with neither is copied whole.
    """
    parts: list[Part] = []
    for table in tables:
        count = min(64, math.ceil(table.bytes / split_bytes)) if split_bytes > 0 else 1
        predicates: list[str] | None = None
        if count > 1 and server_major >= 14 and table.pages >= count:
            predicates = _ctid_parts(table, count)
        elif count > 1 and table.int_key is not None:
            predicates = _key_parts(conn, table, count)
        if not predicates:
            parts.append(Part(f"{table.qualified_name}#0", table.qualified_name, 0, 1, None, True, table.bytes))
            continue
        for i, predicate in enumerate(predicates):
            parts.append(
                Part(
                    f"{table.qualified_name}#{i}",
                    table.qualified_name,
                    i,
                    len(predicates),
                    predicate,
                    False,
                    table.bytes // len(predicates),
                )
            )
    return sorted(parts, key=lambda p: -p.est_bytes)
