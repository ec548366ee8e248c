"""Change capture under concurrent writers: every kind of change, while the copy and the follow run.

Inserts, updates, key updates (cascading to a child table), unique values swapped inside one
transaction, deletes (cascading), TRUNCATE, a table without a key, one large transaction, one
transaction open across the copy's snapshot export and one open across the fence. After the
fence and the drain the target must equal the source exactly.
"""

from __future__ import annotations

import random
import threading
import time

import psycopg
import pytest

from migration.postgres import verify_databases
from migration.postgres.capture import (
    copy_keyless_tables,
    drain_to_marker,
    raise_fence,
    remove_capture,
    sync_sequences,
    verify_changes,
    verify_live,
)
from tests.conftest import Database
from tests.helpers import ferry, following

SCHEMA = """
CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL UNIQUE, balance int NOT NULL DEFAULT 0);
CREATE TABLE events (id bigserial PRIMARY KEY,
                     account_id int NOT NULL REFERENCES accounts ON UPDATE CASCADE ON DELETE CASCADE,
                     payload text);
CREATE TABLE tags (code text PRIMARY KEY, n int);
CREATE TABLE no_key (v text);
INSERT INTO accounts SELECT g, 'a' || g || '@x', g FROM generate_series(1, 2000) g;
INSERT INTO events (account_id, payload) SELECT 1 + g % 2000, 'e' || g FROM generate_series(1, 20000) g;
INSERT INTO tags SELECT 't' || g, g FROM generate_series(1, 100) g;
INSERT INTO no_key SELECT 'n' || g FROM generate_series(1, 10) g;
"""


def _write_while(url: str, stop: threading.Event, done: list[int]) -> None:
    rng = random.Random(12)
    new_id = 100_000
    with psycopg.connect(url, autocommit=True) as conn:
        while not stop.is_set():
            step = done[0]
            a, b = rng.randint(1, 2000), rng.randint(1, 2000)
            try:
                conn.execute("INSERT INTO accounts VALUES (%s, %s, 0)", (new_id, f"new{new_id}@x"))
                conn.execute("INSERT INTO events (account_id, payload) VALUES (%s, 'live')", (new_id,))
                new_id += 1
                conn.execute("UPDATE accounts SET balance = balance + 1 WHERE id = %s", (a,))
                if step % 7 == 0:  # a key update, cascading to events
                    conn.execute("UPDATE accounts SET id = id + 1000000 WHERE id = %s", (b,))
                if step % 5 == 0 and a != b:  # two accounts swap e-mail addresses in one transaction
                    with conn.transaction():
                        row = conn.execute("SELECT email FROM accounts WHERE id = %s", (a,)).fetchone()
                        other = conn.execute("SELECT email FROM accounts WHERE id = %s", (b,)).fetchone()
                        if row and other:
                            conn.execute("UPDATE accounts SET email = 'swapping' WHERE id = %s", (a,))
                            conn.execute("UPDATE accounts SET email = %s WHERE id = %s", (row[0], b))
                            conn.execute("UPDATE accounts SET email = %s WHERE id = %s", (other[0], a))
                if step % 11 == 0:
                    conn.execute("DELETE FROM accounts WHERE id = %s", (rng.randint(1, 2000),))
                if step % 40 == 0:
                    with conn.transaction():
                        conn.execute("TRUNCATE tags")
                        conn.execute("INSERT INTO tags SELECT 't' || g, g + %s FROM generate_series(1, 50) g", (step,))
                conn.execute("INSERT INTO no_key VALUES (%s)", (f"live{step}",))
            except psycopg.errors.UniqueViolation:
                pass  # a swap racing a key update: the writer's own conflict, nothing to check
            done[0] += 1


def test_the_target_equals_the_source_after_concurrent_writes_the_fence_and_the_drain(
    source_db: Database, target_db: Database
) -> None:
    source_db.execute(SCHEMA)
    assert ferry("pg", "capture", "install", "--source", source_db.url).code == 0
    # Open across the copy's snapshot export: written before it, committed after it.
    across_export = psycopg.connect(source_db.url)
    across_export.execute("INSERT INTO events (account_id, payload) VALUES (2, 'open across the export')")
    stop, done = threading.Event(), [0]
    writer = threading.Thread(target=_write_while, args=(source_db.url, stop, done))
    writer.start()
    try:
        copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--jobs", "2")
        assert copied.code == 0, copied.output
        across_export.commit()
        across_export.close()
        with following(source_db.url, target_db.url):
            # One large transaction: its entries span many batches.
            source_db.execute(
                "INSERT INTO events (account_id, payload) SELECT 3, 'large ' || g FROM generate_series(1, 30000) g"
            )
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                time.sleep(0.1)
            live = verify_live(source_db.url, target_db.url, jobs=2)
            # Open across the fence: its write must be on neither side.
            across_fence = psycopg.connect(source_db.url)
            across_fence.execute("UPDATE accounts SET balance = -1 WHERE id = 10")
            stop.set()
            writer.join()
        assert done[0] > 20, "the writer hardly wrote"
        with (
            psycopg.connect(source_db.url, autocommit=True) as src,
            psycopg.connect(target_db.url, autocommit=True) as dst,
        ):
            fence = raise_fence(src, grace_seconds=0.3)
            assert fence.ended == 1
            drain_to_marker(src, dst, fence.marker)
            sync_sequences(src, dst)
            copy_keyless_tables(src, dst)
        with pytest.raises(psycopg.OperationalError):
            across_fence.commit()
        across_fence.close()
        report = verify_databases(source_db.url, target_db.url, mode="full")
        assert report.identical, [str(d) for d in report.differences]
        changes = verify_changes(source_db.url, target_db.url, through=live.through, deferred=live.deferred, jobs=2)
        assert changes.identical, [str(d) for d in changes.differences]
        assert target_db.scalar("SELECT count(*) FROM events WHERE payload = 'open across the export'") == 1
        assert target_db.scalar("SELECT count(*) FROM events WHERE payload LIKE 'large %'") == 30000
        assert target_db.scalar("SELECT count(*) FROM accounts WHERE balance = -1") == 0
        assert target_db.scalar("SELECT count(*) FROM accounts WHERE id > 1000000") > 0  # key updates arrived
    finally:
        stop.set()
        writer.join()
        remove_capture(source_db.url)
