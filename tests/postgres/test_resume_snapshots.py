"""A resumed copy reads what is left from a new snapshot, while the app deletes and updates.

kill -9 in the middle of the data (``FERRY_CRASH_AT``), a writer deleting parents with
``ON DELETE CASCADE`` and moving rows of a split table between its ranges the whole time, then
``--resume``: it finishes. A split table whose ranges straddle the kill is copied again whole (its
rows would otherwise be in two ranges or none); a foreign key whose rows the two snapshots left
disagreeing is added NOT VALID, named in a warning and in ``--json``.
"""

from __future__ import annotations

import os
import random
import threading

import psycopg
import pytest

from migration.postgres import verify_databases
from tests.conftest import Database
from tests.helpers import Run, ferry

SHOP = """
CREATE TABLE big (id bigint PRIMARY KEY, v int NOT NULL, pad text);
INSERT INTO big SELECT g, 0, md5(g::text) || md5((g + 1)::text) FROM generate_series(1, 60000) g;
CREATE TABLE customers (id int PRIMARY KEY, name text);
INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 2000) g;
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL REFERENCES customers ON DELETE CASCADE,
                     pad text);
INSERT INTO orders SELECT g, 1 + g % 2000, md5(g::text) FROM generate_series(1, 20000) g;
"""


class _Writer(threading.Thread):
    """The app: deletes customers (their orders go with them) and updates rows of big, until stopped."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.failures = url, threading.Event(), list[BaseException]()
        self.rng = random.Random(4)

    def step(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        conn.execute("DELETE FROM customers WHERE id = %s", (self.rng.randint(1, 2000),))
        # Pages are full: an updated row moves to another page, often into another ctid range.
        start = self.rng.randint(1, 59000)
        conn.execute("UPDATE big SET v = v + 1 WHERE id BETWEEN %s AND %s", (start, start + 300))

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self.stop.wait(0.01):
                    self.step(conn)
        except BaseException as exc:
            self.failures.append(exc)


def _copy(source: Database, target: Database, split: str, *extra: str, crash_at: str | None = None) -> Run:
    env = {k: v for k, v in os.environ.items() if k != "FERRY_CRASH_AT"}
    if crash_at:
        env["FERRY_CRASH_AT"] = crash_at
    args = ["pg", "copy", "--source", source.url, "--target", target.url, "--jobs", "1",
            "--split-tables-larger-than", split, *extra]  # fmt: skip
    return ferry(*args, env=env)


@pytest.mark.parametrize(
    ("split", "killed_after"),
    [
        # big is cut in ranges and killed after two of them: they straddle the two snapshots.
        ("1MB", "ranges of big"),
        # Nothing is cut: big, then orders, are in when killed; customers come from the resume's snapshot.
        ("0", "orders, before customers"),
    ],
)
def test_a_resume_while_the_app_deletes_with_cascade_and_moves_rows_finishes(
    split: str, killed_after: str, source_db: Database, target_db: Database
) -> None:
    source_db.execute(SHOP)
    writer = _Writer(source_db.url)
    writer.start()
    try:
        killed = _copy(source_db, target_db, split, crash_at="part-copied:2")
        assert killed.code == -9, killed.output
        done = {str(r[0]) for r in target_db.execute("SELECT part_key FROM _ferry.part")}
        if split == "0":
            assert done == {"public.big#0", "public.orders#0"}
        else:
            assert done == {"public.big#0", "public.big#1"}
        # Written after the first snapshot, for certain: parents deleted, rows of big's first range moved.
        with psycopg.connect(source_db.url, autocommit=True) as conn:
            conn.execute("DELETE FROM customers WHERE id BETWEEN 1 AND 20")
            conn.execute("UPDATE big SET v = v + 1 WHERE id <= 2000")
        resumed = _copy(source_db, target_db, split, "--resume", "--json")
    finally:
        writer.stop.set()
        writer.join(30)
    assert not writer.failures, writer.failures
    assert resumed.code == 0, resumed.output
    summary, stderr = resumed.json, resumed.stderr

    # big holds every row once: a row moved between its ranges is neither doubled nor lost.
    assert target_db.scalar("SELECT to_regclass('public.big_pkey') IS NOT NULL")
    assert target_db.scalar("SELECT count(*) FROM big") == 60000
    assert ("public.big copied again whole" in stderr) == (split != "0"), stderr

    orphans = target_db.scalar(
        "SELECT count(*) FROM orders o WHERE NOT EXISTS (SELECT FROM customers c WHERE c.id = o.customer_id)"
    )
    validated = target_db.scalar("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_customer_id_fkey'")
    relaxed = [{"table": "public.orders", "name": "orders_customer_id_fkey"}]
    warnings = [line for line in stderr.splitlines() if "orders_customer_id_fkey" in line]
    if split == "0":
        assert orphans, "the resume's customers should miss parents of orders copied before it"
    if orphans:
        assert validated is False and summary["not_valid_foreign_keys"] == relaxed
        assert len(warnings) == 1 and "NOT VALID" in warnings[0] and "before and after the resume" in warnings[0]
        # NOT VALID still holds for new writes.
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            target_db.execute("INSERT INTO orders VALUES (99999999, -1, 'no such customer')")
    else:
        assert validated is True and summary["not_valid_foreign_keys"] == [] and not warnings
    assert summary["resumed"] is True and summary["consistent"] is False
    assert target_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = '_ferry'") == 0


def test_a_copy_never_interrupted_reports_no_not_valid_foreign_key(source_db: Database, target_db: Database) -> None:
    source_db.execute(SHOP)
    run = _copy(source_db, target_db, "1MB", "--json")
    assert run.code == 0, run.output
    assert run.json["not_valid_foreign_keys"] == [] and run.json["consistent"] is True
    assert target_db.scalar("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_customer_id_fkey'")


def test_large_objects_partly_copied_before_a_resume_are_copied_again_whole(
    source_db: Database, target_db: Database
) -> None:
    """Large objects go in batches of 500 by oid: a batch list read from another snapshot shifts."""
    source_db.execute(
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1); "
        "SELECT lo_from_bytea(0, ('object ' || g)::bytea) FROM generate_series(1, 700) g"
    )
    killed = _copy(source_db, target_db, "0", crash_at="large-objects:1")
    assert killed.code == -9, killed.output
    assert target_db.scalar("SELECT count(*) FROM pg_largeobject_metadata") == 500
    # Between the snapshots: the first object gone (every later one moves down a batch), one rewritten.
    source_db.execute("SELECT lo_unlink(min(oid)) FROM pg_largeobject_metadata")
    source_db.execute("SELECT lo_put(max(oid), 0, 'rewritten'::bytea) FROM pg_largeobject_metadata")
    resumed = _copy(source_db, target_db, "0", "--resume", "--json")
    assert resumed.code == 0, resumed.output
    assert "the large objects copied again whole" in resumed.stderr
    assert resumed.json["large_objects"] == 699
    report = verify_databases(source_db.url, target_db.url, mode="full")
    assert report.identical, report.differences[:5]


def test_a_resume_killed_while_it_starts_a_table_over_leaves_the_parts_as_they_were(
    source_db: Database, target_db: Database
) -> None:
    """The rows of the done ranges and their markers go in one transaction: killed inside it, both stay."""
    source_db.execute(SHOP)
    assert _copy(source_db, target_db, "1MB", crash_at="part-copied:2").code == -9
    rows = target_db.scalar("SELECT count(*) FROM big")
    killed = _copy(source_db, target_db, "1MB", "--resume", crash_at="parts-restarting")
    assert killed.code == -9, killed.output
    assert target_db.scalar("SELECT count(*) FROM _ferry.part WHERE part_key LIKE 'public.big#%'") == 2
    assert target_db.scalar("SELECT count(*) FROM big") == rows
    resumed = _copy(source_db, target_db, "1MB", "--resume")
    assert resumed.code == 0, resumed.output
    assert verify_databases(source_db.url, target_db.url, mode="full").identical


def test_a_killed_copy_follow_resumes_and_its_foreign_key_ends_valid(source_db: Database, target_db: Database) -> None:
    """The issue's case: ``ferry pg copy --follow`` killed mid-copy while parents are deleted with cascade.
    The resume finishes; the follow brings the deletes; the foreign key added NOT VALID is validated."""
    source_db.execute(SHOP)
    writer = _Writer(source_db.url)
    writer.start()
    try:
        killed = _copy(source_db, target_db, "0", "--follow", crash_at="part-copied:2")
        assert killed.code == -9, killed.output
        with psycopg.connect(source_db.url, autocommit=True) as conn:
            conn.execute("DELETE FROM customers WHERE id BETWEEN 1 AND 20")
        resumed = _copy(source_db, target_db, "0", "--resume", "--follow", "--follow-seconds", "1")
        assert resumed.code == 0, resumed.output
    finally:
        writer.stop.set()
        writer.join(30)
    assert not writer.failures, writer.failures
    try:
        # The writer stopped: one more follow applies the rest and validates what the resume left NOT VALID.
        again = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "0")
        assert again.code == 0, again.output
        assert target_db.scalar("SELECT convalidated FROM pg_constraint WHERE conname = 'orders_customer_id_fkey'")
        report = verify_databases(source_db.url, target_db.url, mode="full")
        assert report.identical, [str(d) for d in report.differences]
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)
