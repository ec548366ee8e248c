"""Verification in proportion to the changes: a full pass while writes go on, then only what changed."""

from __future__ import annotations

import random
import threading

import psycopg
import pytest

from migration.postgres import verify_databases
from migration.postgres.capture import (
    drain_to_marker,
    raise_fence,
    remove_capture,
    sync_sequences,
    verify_changes,
    verify_live,
)
from tests.conftest import Database
from tests.helpers import ferry, following

ROWS = 20_000
SCHEMA = f"""
CREATE TABLE big (id int PRIMARY KEY, v text, n int);
CREATE TABLE codes (code text PRIMARY KEY, n int);
CREATE TABLE no_key (v text);
INSERT INTO big SELECT g, 'v' || g, g % 7 FROM generate_series(1, {ROWS}) g;
INSERT INTO codes SELECT 'c' || g, g FROM generate_series(1, 300) g;
INSERT INTO no_key VALUES ('x'), ('y');
ANALYZE;
"""


@pytest.fixture(autouse=True)
def small_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranges of 1,000 rows, so that 20,000 rows make 20 of them."""
    monkeypatch.setattr("migration.postgres.verify._ROWS_PER_RANGE", 1000)


def _copy(source: Database, target: Database) -> None:
    source.execute(SCHEMA)
    copied = ferry("pg", "copy", "--source", source.url, "--target", target.url, "--follow-seconds", "0")
    assert copied.code == 0, copied.output


def _fence_and_drain(source: Database, target: Database) -> None:
    with psycopg.connect(source.url, autocommit=True) as src, psycopg.connect(target.url, autocommit=True) as dst:
        fence = raise_fence(src, grace_seconds=0.2)
        drain_to_marker(src, dst, fence.marker)
        sync_sequences(src, dst)


def _write_while(source: Database, stop: threading.Event) -> None:
    rng = random.Random(7)
    next_id = ROWS + 1
    with psycopg.connect(source.url, autocommit=True) as conn:
        while not stop.is_set():
            key = rng.randint(1, ROWS)
            conn.execute("UPDATE big SET v = v || '.', n = n + 1 WHERE id = %s", (key,))
            conn.execute("INSERT INTO big VALUES (%s, 'new', 0)", (next_id,))
            conn.execute("DELETE FROM big WHERE id = %s", (rng.randint(1, ROWS),))
            conn.execute("UPDATE codes SET n = n + 1 WHERE code = %s", (f"c{rng.randint(1, 300)}",))
            next_id += 1


def test_writes_during_the_live_pass_are_compared_again_and_nothing_else_is(
    source_db: Database, target_db: Database
) -> None:
    _copy(source_db, target_db)
    try:
        stop = threading.Event()
        writer = threading.Thread(target=_write_while, args=(source_db, stop))
        with following(source_db.url, target_db.url):
            writer.start()
            live = verify_live(source_db.url, target_db.url, jobs=2)
            stop.set()
            writer.join()
        _fence_and_drain(source_db, target_db)
        assert live.report.ranges_checked >= ROWS // 1000
        assert live.report.rows_checked >= ROWS
        assert live.report.identical
        report = verify_changes(source_db.url, target_db.url, through=live.through, deferred=live.deferred, jobs=2)
        assert report.identical, [str(d) for d in report.differences]
        assert report.mode == "changes"
        # Only what was written since the live pass, not the 20,000 rows, was read again row by row.
        assert 0 < report.rows_checked < ROWS // 2
        full = verify_databases(source_db.url, target_db.url, mode="full")
        assert full.identical, [str(d) for d in full.differences]
        # Big tables are not counted again: their ranges were counted in the live pass.
        lean = verify_changes(
            source_db.url, target_db.url, through=live.through, deferred=live.deferred, jobs=2, count_up_to=1000
        )
        assert lean.identical and any("with more than 1000 rows were counted range by range" in n for n in lean.notes)
        # Once capture is gone, nothing says what changed: the comparison is the full one.
        remove_capture(source_db.url)
        after = verify_changes(source_db.url, target_db.url, through=live.through, jobs=2)
        assert after.mode == "full" and after.identical and after.rows_checked >= ROWS
        assert any("compared in full" in note for note in after.notes)
    finally:
        remove_capture(source_db.url)


def test_the_freeze_pass_finds_what_differs_since_the_live_pass(source_db: Database, target_db: Database) -> None:
    _copy(source_db, target_db)
    try:
        # Wrong on the target before the live pass, in a range nobody writes to: deferred, then reported.
        target_db.execute("UPDATE big SET v = 'wrong before' WHERE id = 15000")
        with following(source_db.url, target_db.url):
            live = verify_live(source_db.url, target_db.url, jobs=2, attempts=1, wait_seconds=1)
            assert [r.table for r in live.deferred] == ["public.big"]
            assert live.report.notes and "compared inside the freeze" in live.report.notes[0]
            source_db.execute("UPDATE big SET v = 'changed after the live pass' WHERE id = 5")
            source_db.execute("INSERT INTO codes VALUES ('new', 1)")
        _fence_and_drain(source_db, target_db)
        # A row the follow rewrote since, wrong on the target; a row missing from a table nobody wrote
        # to; an extra row in a table without a key.
        target_db.execute("UPDATE big SET v = 'wrong after' WHERE id = 5")
        target_db.execute("DELETE FROM codes WHERE code = 'c9'")
        target_db.execute("INSERT INTO no_key VALUES ('z')")
        report = verify_changes(source_db.url, target_db.url, through=live.through, deferred=live.deferred, jobs=2)
        found = {(d.kind, d.name) for d in report.differences}
        assert ("row", 'public.big key {"id": 5}') in found
        ranges = [d.name for d in report.differences if d.kind == "checksum"]
        assert ranges == [f"public.big id in [{live.deferred[0].label.split('[')[1]}"]
        low, high = (int(x) for x in ranges[0].split("[")[1].rstrip(")").split(", "))
        assert low <= 15000 < high
        assert ("row count", "public.codes") in found
        assert ("row count", "public.no_key") in found
        assert len(found) == 4, found
    finally:
        remove_capture(source_db.url)


def test_the_bigger_tables_are_counted_on_their_own_snapshots(
    source_db: Database, target_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tables past the shared snapshot's share are counted on snapshots of their own, begun before the
    catalogs are compared; a row missing there, in a range nobody wrote to, is still a count apart."""
    monkeypatch.setattr("migration.postgres.capture.changes._COUNT_ON_SHARED", 1000)
    _copy(source_db, target_db)
    try:
        with following(source_db.url, target_db.url):
            live = verify_live(source_db.url, target_db.url, jobs=2)
        _fence_and_drain(source_db, target_db)
        assert verify_changes(source_db.url, target_db.url, through=live.through, jobs=2).identical
        with psycopg.connect(target_db.url, autocommit=True) as conn:
            conn.execute("SET session_replication_role = replica")  # past the follow's own triggers, if any
            conn.execute("DELETE FROM big WHERE id = 12345")
        report = verify_changes(source_db.url, target_db.url, through=live.through, jobs=2)
        assert [(d.kind, d.name, d.source, d.target) for d in report.differences] == [
            ("row count", "public.big", str(ROWS), str(ROWS - 1))
        ]
    finally:
        remove_capture(source_db.url)
