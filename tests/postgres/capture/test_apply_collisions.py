"""Values handed between rows across batches, for every kind of index that can refuse a row.

The apply replaces a row by its key; when the row now holds a value that another row still holds
on the target (its own change is in a later batch), that row is taken out and read again. Each
case hands values from row to row in separate transactions, and the log is applied one entry per
batch, so every hand-over meets the collision.
"""

from __future__ import annotations

import psycopg
import pytest

from migration.postgres import verify_databases
from migration.postgres.capture.apply import apply_batch, prepare_target
from tests.conftest import Database
from tests.helpers import ferry

# (schema, writes): each write its own transaction, handing values between rows 1, 2 and 3.
CASES: dict[str, tuple[str, list[str]]] = {
    "expression": (
        "CREATE TABLE t (id int PRIMARY KEY, email text NOT NULL);"
        "CREATE UNIQUE INDEX t_email_lower ON t (lower(email));"
        "INSERT INTO t VALUES (1, 'A@x'), (2, 'B@x'), (3, 'C@x');",
        ["UPDATE t SET email = 'tmp' WHERE id = 1", "UPDATE t SET email = 'a@X' WHERE id = 3",
         "UPDATE t SET email = 'c@x' WHERE id = 2", "UPDATE t SET email = 'b@x' WHERE id = 1"],
    ),
    "partial": (
        "CREATE TABLE t (id int PRIMARY KEY, handle text NOT NULL, deleted boolean NOT NULL DEFAULT false);"
        "CREATE UNIQUE INDEX t_handle_live ON t (handle) WHERE NOT deleted;"
        "INSERT INTO t VALUES (1, 'ann', false), (2, 'bob', false), (3, 'ann', true);",
        ["UPDATE t SET deleted = true WHERE id = 1", "UPDATE t SET deleted = false WHERE id = 3",
         "UPDATE t SET deleted = true WHERE id = 2", "UPDATE t SET handle = 'bob', deleted = false WHERE id = 1"],
    ),
    "nulls not distinct": (
        "CREATE TABLE t (id int PRIMARY KEY, code text, region text, UNIQUE NULLS NOT DISTINCT (code, region));"
        "INSERT INTO t VALUES (1, 'x', NULL), (2, 'y', NULL), (3, NULL, NULL);",
        ["UPDATE t SET code = 'tmp' WHERE id = 1", "UPDATE t SET code = 'x' WHERE id = 3",
         "UPDATE t SET code = NULL WHERE id = 2", "UPDATE t SET code = 'y' WHERE id = 1"],
    ),
    "nullable columns": (
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int, UNIQUE (a, b));"
        "INSERT INTO t VALUES (1, 1, 1), (2, 2, NULL), (3, 3, 3), (4, 2, NULL);",
        ["UPDATE t SET b = NULL WHERE id = 2",  # (2, NULL) twice is allowed: NULLs never collide
         "UPDATE t SET a = 9 WHERE id = 1", "UPDATE t SET a = 1 WHERE id = 3", "UPDATE t SET a = 3, b = 3 WHERE id = 1"],
    ),
    "generated column": (
        "CREATE TABLE t (id int PRIMARY KEY, first text NOT NULL, last text NOT NULL,"
        " full_name text GENERATED ALWAYS AS (first || ' ' || last) STORED UNIQUE);"
        "INSERT INTO t VALUES (1, 'ann', 'lee'), (2, 'bob', 'ray'), (3, 'cy', 'dee');",
        ["UPDATE t SET last = 'tmp' WHERE id = 1", "UPDATE t SET first = 'ann', last = 'lee' WHERE id = 3",
         "UPDATE t SET first = 'cy', last = 'dee' WHERE id = 2", "UPDATE t SET first = 'bob', last = 'ray' WHERE id = 1"],
    ),
    "function in another schema": (
        "CREATE SCHEMA util; CREATE FUNCTION util.norm(text) RETURNS text LANGUAGE sql IMMUTABLE"
        " AS $$ SELECT translate(lower($1), '-', '') $$;"
        "CREATE TABLE t (id int PRIMARY KEY, sku text NOT NULL); CREATE UNIQUE INDEX t_sku ON t (util.norm(sku));"
        "INSERT INTO t VALUES (1, 'A-1'), (2, 'B-2'), (3, 'C-3');",
        ["UPDATE t SET sku = 'tmp' WHERE id = 1", "UPDATE t SET sku = 'a1' WHERE id = 3",
         "UPDATE t SET sku = 'c3' WHERE id = 2", "UPDATE t SET sku = 'b-2' WHERE id = 1"],
    ),
    "include and opclass": (
        "CREATE TABLE t (id int PRIMARY KEY, code varchar(20) NOT NULL, note text);"
        "CREATE UNIQUE INDEX t_code ON t (code text_pattern_ops) INCLUDE (note);"
        "INSERT INTO t VALUES (1, 'a', 'n1'), (2, 'b', 'n2'), (3, 'c', 'n3');",
        ["UPDATE t SET code = 'tmp' WHERE id = 1", "UPDATE t SET code = 'a', note = 'moved' WHERE id = 3",
         "UPDATE t SET code = 'c' WHERE id = 2", "UPDATE t SET code = 'b' WHERE id = 1"],
    ),
    "case-insensitive collation": (
        "CREATE COLLATION IF NOT EXISTS ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);"
        "CREATE TABLE t (id int PRIMARY KEY, slug text NOT NULL); CREATE UNIQUE INDEX t_slug ON t (slug COLLATE ci);"
        "INSERT INTO t VALUES (1, 'ann'), (2, 'Bob'), (3, 'cy');",
        ["UPDATE t SET slug = 'tmp' WHERE id = 1", "UPDATE t SET slug = 'ANN' WHERE id = 3",
         "UPDATE t SET slug = 'Cy' WHERE id = 2", "UPDATE t SET slug = 'bob' WHERE id = 1"],
    ),
    "deferrable unique": (
        "CREATE TABLE t (id int PRIMARY KEY, slot int NOT NULL UNIQUE DEFERRABLE INITIALLY DEFERRED);"
        "INSERT INTO t VALUES (1, 10), (2, 20), (3, 30);",
        ["UPDATE t SET slot = 99 WHERE id = 1", "UPDATE t SET slot = 10 WHERE id = 3",
         "UPDATE t SET slot = 30 WHERE id = 2", "UPDATE t SET slot = 20 WHERE id = 1"],
    ),
    "exclusion on expressions, partial": (
        "CREATE EXTENSION IF NOT EXISTS btree_gist;"
        "CREATE TABLE t (id int PRIMARY KEY, room int NOT NULL, starts timestamptz NOT NULL,"
        " ends timestamptz NOT NULL, cancelled boolean NOT NULL DEFAULT false,"
        " EXCLUDE USING gist (room WITH =, tstzrange(starts, ends) WITH &&) WHERE (NOT cancelled));"
        "INSERT INTO t VALUES (1, 7, '2024-01-01 10:00', '2024-01-01 11:00', false),"
        " (2, 7, '2024-01-01 12:00', '2024-01-01 13:00', false), (3, 7, '2024-01-01 10:00', '2024-01-01 11:00', true);",
        ["UPDATE t SET cancelled = true WHERE id = 1", "UPDATE t SET cancelled = false WHERE id = 3",
         "UPDATE t SET room = 8 WHERE id = 2",
         "UPDATE t SET cancelled = false, starts = '2024-01-01 12:00', ends = '2024-01-01 13:00' WHERE id = 1"],
    ),
}  # fmt: skip


def _drain_one_by_one(source: Database, target: Database) -> int:
    applied = 0
    with psycopg.connect(source.url, autocommit=True) as src, psycopg.connect(target.url, autocommit=True) as dst:
        prepare_target(dst)
        while (result := apply_batch(src, dst, "ferry_capture", limit=1)).entries:
            applied += result.entries
    return applied


@pytest.mark.parametrize("case", sorted(CASES))
def test_values_handed_between_rows_arrive_one_batch_at_a_time(
    case: str, source_db: Database, target_db: Database
) -> None:
    schema, writes = CASES[case]
    if case == "nulls not distinct" and int(str(source_db.scalar("SHOW server_version_num"))) < 150000:
        pytest.skip("NULLS NOT DISTINCT is PostgreSQL 15+")
    source_db.execute(schema)
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
    assert copied.code == 0, copied.output
    try:
        for write in writes:
            source_db.execute(write)
        assert _drain_one_by_one(source_db, target_db) >= 3
        report = verify_databases(source_db.url, target_db.url, mode="full")
        assert report.identical, [str(d) for d in report.differences]
        assert target_db.execute("SELECT * FROM t ORDER BY id") == source_db.execute("SELECT * FROM t ORDER BY id")
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)


def test_a_rotation_through_many_rows_in_one_batch_and_across_batches(source_db: Database, target_db: Database) -> None:
    """Each row takes the next one's value: one collision leads to the next, round after round."""
    source_db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, email text NOT NULL); CREATE UNIQUE INDEX ON t (lower(email));"
        "INSERT INTO t SELECT g, 'u' || g || '@x' FROM generate_series(1, 200) g"
    )
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
    assert copied.code == 0, copied.output
    try:
        source_db.execute("UPDATE t SET email = 'parked' WHERE id = 200")
        for i in range(199, 0, -1):  # row i takes row i+1's old value, one transaction each
            source_db.execute("UPDATE t SET email = %s WHERE id = %s", (f"U{i + 1}@X", i))
        source_db.execute("UPDATE t SET email = 'u1@x' WHERE id = 200")
        assert _drain_one_by_one(source_db, target_db) == 201
        report = verify_databases(source_db.url, target_db.url, mode="full")
        assert report.identical, [str(d) for d in report.differences]
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)
