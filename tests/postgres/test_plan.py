"""The copy planner: when a table is split, into which ranges, and in which order the parts run."""

from __future__ import annotations

import re
from typing import cast

import psycopg

from migration.postgres.catalog import Conn, IndexBuild, TableInfo
from migration.postgres.copy.plan import AUTO_SPLIT_MIN_BYTES, plan_parts, split_count
from tests.conftest import Database

GB = 1 << 30


def table(name: str, size: int, *, pages: int = 0, int_key: str | None = None, index_cost: int = 0) -> TableInfo:
    indexes = (
        [IndexBuild(f"{name}_idx", f"public.{name}_idx", 1, None, None, None, None, cost=index_cost)]
        if index_cost
        else []
    )
    return TableInfo(1, f"public.{name}", "public", name, ["id"], size, pages, size // 100, int_key, indexes=indexes)


def test_automatic_splitting_splits_only_a_table_longer_than_a_fair_share() -> None:
    big, small = table("big", 3 * GB), table("small", GB)
    total = big.priority + small.priority
    assert split_count(big, total, 4, None) == 3  # 3 GB against a fair share of 1 GB
    assert split_count(small, total, 4, None) == 1
    assert split_count(big, total, 1, None) == 1  # one job: nothing to overlap with
    tiny = table("tiny", AUTO_SPLIT_MIN_BYTES - 1)
    assert split_count(tiny, tiny.priority, 8, None) == 1  # under the floor: COPY FREEZE is worth more
    assert split_count(table("huge", 500 * GB), 500 * GB, 128, None) == 64  # never more than 64 ranges


def test_index_builds_count_as_work_on_the_critical_path() -> None:
    plain, indexed = table("plain", GB), table("indexed", GB, index_cost=3 * GB)
    total = plain.priority + indexed.priority
    assert split_count(indexed, total, 2, None) == 2 and split_count(plain, total, 2, None) == 1


def test_an_explicit_split_size_cuts_by_bytes() -> None:
    assert split_count(table("t", 10 * GB), 0, 1, GB) == 10
    assert split_count(table("t", 10 * GB + 1), 0, 1, GB) == 11
    assert split_count(table("t", 1000 * GB), 0, 1, GB) == 64
    assert split_count(table("t", 10 * GB), 0, 1, 0) == 1


def test_ctid_ranges_cover_the_table_without_gaps_longest_path_first() -> None:
    big = table("big", 4 * GB, pages=1000)
    medium = table("medium", 2 * GB, pages=10)
    parts = plan_parts(cast(Conn, None), [medium, big], GB, 14, 4)  # ctid ranges need no query
    assert [p.table for p in parts[:4]] == ["public.big"] * 4  # the critical path starts first
    ranges = [p.predicate for p in parts if p.table == "public.big"]
    assert ranges == [
        "ctid < '(250,0)'::tid",
        "ctid >= '(250,0)'::tid AND ctid < '(500,0)'::tid",
        "ctid >= '(500,0)'::tid AND ctid < '(750,0)'::tid",
        "ctid >= '(750,0)'::tid",
    ]
    assert not any(p.freeze for p in parts if p.table == "public.big")
    assert sum(p.est_bytes for p in parts if p.table == "public.big") == 4 * GB


def test_a_table_that_cannot_be_split_is_one_frozen_part() -> None:
    # PostgreSQL 13 has no TID range scan, and this table has no integer key.
    [part] = plan_parts(cast(Conn, None), [table("t", 4 * GB, pages=1000)], GB, 13, 4)
    assert part.predicate is None and part.freeze and part.count == 1 and part.key == "public.t#0"


def test_key_ranges_partition_every_row_exactly_once(source_db: Database) -> None:
    source_db.execute(
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT g FROM generate_series(-37, 1000, 3) g"
    )
    with psycopg.connect(source_db.url) as conn:
        parts = plan_parts(conn, [table("t", 4 * GB, int_key="id")], GB, 13, 4)
        assert len(parts) == 4 and all(re.fullmatch(r"[id<>=\d\s\-AND]+", p.predicate or "") for p in parts)
        counts = [int(conn.execute(f"SELECT count(*) FROM t WHERE {p.predicate}").fetchone()[0]) for p in parts]
        total = int(conn.execute("SELECT count(*) FROM t").fetchone()[0])
        covered = conn.execute(
            "SELECT count(*) FROM t WHERE " + " OR ".join(f"({p.predicate})" for p in parts)
        ).fetchone()[0]
    assert sum(counts) == total == covered and min(counts) > 0
