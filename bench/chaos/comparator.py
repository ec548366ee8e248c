"""The comparator, independent of ferry's verify: per table an md5 of its rows in one order and a
count, every sequence's state and parameters, every large object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

SESSION = (
    "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
    "SET extra_float_digits = 3; SET bytea_output = 'hex'; SET lc_monetary = 'C'; SET lc_numeric = 'C'; "
    "SET row_security = off; SET statement_timeout = 0; SET search_path = pg_catalog"
)
#: Schemas that are ferry's own on either side (left out of the compare, looked for after removal).
FERRY_SCHEMAS = ("ferry_capture", "_ferry", "_ferry_follow")
_RELATIONS = """
SELECT format('%%I.%%I', n.nspname, c.relname), c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm', 'S') AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
   AND n.nspname <> ALL(%s)
 ORDER BY 1
"""


@dataclass
class Snapshot:
    tables: dict[str, tuple[int, str]]
    matviews: set[str]
    sequences: dict[str, tuple[Any, ...]]
    large_objects: dict[int, str]


def snapshot(url: str) -> Snapshot:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SESSION)
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        tables: dict[str, tuple[int, str]] = {}
        sequences: dict[str, tuple[Any, ...]] = {}
        matviews = set()
        for name, kind in conn.execute(_RELATIONS, (list(FERRY_SCHEMAS),)).fetchall():
            if kind == "S":
                state = conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(name))).fetchone()
                shape = conn.execute(
                    "SELECT data_type::text, start_value, min_value, max_value, increment_by, cycle, cache_size "
                    "FROM pg_sequences WHERE format('%%I.%%I', schemaname, sequencename) = %s",
                    (name,),
                ).fetchone()
                sequences[name] = (*(state or ()), *(shape or ()))
                continue
            row = conn.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text COLLATE \"C\"), '')) "
                    "FROM ONLY {} t"
                ).format(sql.SQL(name))
            ).fetchone()
            assert row is not None
            tables[name] = (int(row[0]), str(row[1]))
            if kind == "m":
                matviews.add(name)
            if kind == "p":  # what a query of the parent sees: a partition detached or attached changes it
                row = conn.execute(
                    sql.SQL(
                        "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text COLLATE \"C\"), '')) "
                        "FROM {} t"
                    ).format(sql.SQL(name))
                ).fetchone()
                assert row is not None
                tables[f"{name} with its partitions"] = (int(row[0]), str(row[1]))
        objects = {
            int(r[0]): str(r[1])
            for r in conn.execute("SELECT oid, md5(lo_get(oid)) FROM pg_largeobject_metadata").fetchall()
        }
        conn.execute("COMMIT")
    return Snapshot(tables=tables, matviews=matviews, sequences=sequences, large_objects=objects)


def rows_of(url: str, table: str, limit: int = 200_000, *, only: bool = True) -> set[str]:
    query = sql.SQL("SELECT t::text FROM {only} {t} t LIMIT %s").format(
        only=sql.SQL("ONLY" if only else ""), t=sql.SQL(table)
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SESSION)
        return {str(r[0]) for r in conn.execute(query, (limit,))}


def compare(source: str, target: str) -> tuple[list[str], list[str], list[str]]:
    """Differences (one line each), for each differing table a few differing rows, and notes: a
    materialized view holds what its last REFRESH computed, which no capture carries (the copy
    refreshes them on the target), so its content is a note, not a difference."""
    a, b = snapshot(source), snapshot(target)
    diffs: list[str] = []
    samples: list[str] = []
    notes: list[str] = []
    for name in sorted(a.tables.keys() | b.tables.keys()):
        if name in a.matviews and name in b.tables and a.tables[name] != b.tables[name]:
            notes.append(f"materialized view {name} holds other rows on the target (refreshed by the copy)")
        elif name not in b.tables:
            diffs.append(f"{name}: missing on the target")
        elif name not in a.tables:
            diffs.append(f"{name}: only on the target")
        elif a.tables[name] != b.tables[name]:
            diffs.append(f"{name}: {a.tables[name][0]} rows on the source, {b.tables[name][0]} on the target")
            relation = name.removesuffix(" with its partitions")
            src, dst = (
                rows_of(source, relation, only=relation == name),
                rows_of(target, relation, only=relation == name),
            )
            for row in sorted(src - dst)[:3]:
                samples.append(f"{name} source only: {row[:300]}")
            for row in sorted(dst - src)[:3]:
                samples.append(f"{name} target only: {row[:300]}")
    for name in sorted(a.sequences.keys() | b.sequences.keys()):
        if a.sequences.get(name) != b.sequences.get(name):
            diffs.append(
                f"sequence {name}: {a.sequences.get(name)} on the source, {b.sequences.get(name)} on the target"
            )
    if a.large_objects != b.large_objects:
        differing = sorted(k for k in a.large_objects.keys() | b.large_objects.keys()
                           if a.large_objects.get(k) != b.large_objects.get(k))  # fmt: skip
        diffs.append(f"large objects: {len(differing)} differ (e.g. {differing[:5]})")
    return diffs, samples, notes
