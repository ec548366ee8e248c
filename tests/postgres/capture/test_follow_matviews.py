"""A REFRESH MATERIALIZED VIEW on the source after the copy reaches the target: by the follow, and inside the freeze."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from migration.postgres import sync_matviews, verify_databases
from migration.postgres.capture import CaptureSettings, drain_to_marker, lower_fence, raise_fence, sync_sequences
from tests.conftest import Database
from tests.helpers import ferry

SCHEMA = """
CREATE TABLE sales (id int PRIMARY KEY, region text NOT NULL, amount int NOT NULL);
INSERT INTO sales SELECT g, 'r' || (g % 3), g FROM generate_series(1, 300) g;
CREATE MATERIALIZED VIEW totals AS SELECT region, sum(amount) AS total FROM sales GROUP BY region;
CREATE UNIQUE INDEX ON totals (region);
CREATE MATERIALIZED VIEW later AS SELECT count(*) AS n FROM sales WITH NO DATA;
"""


def _totals(db: Database) -> list[tuple[object, ...]]:
    return db.execute("SELECT region, total FROM totals ORDER BY region")


def test_a_refresh_on_the_source_is_followed_and_brought_in_line_inside_the_freeze(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    source_db.execute(SCHEMA)
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
    assert copied.code == 0, copied.output
    status = tmp_path / "status.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "migration", "pg", "follow", "--source", source_db.url, "--target", target_db.url,
         "--status-file", str(status)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        source_db.execute("INSERT INTO sales SELECT g, 'r9', 1 FROM generate_series(1000, 1009) g")
        source_db.execute("REFRESH MATERIALIZED VIEW totals; REFRESH MATERIALIZED VIEW later")
        deadline = time.monotonic() + 60
        while _totals(target_db) != _totals(source_db):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        while not target_db.scalar("SELECT relispopulated FROM pg_class WHERE relname = 'later'"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        assert json.loads(status.read_text())["phase"] == "live"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    try:
        # Refreshed CONCURRENTLY (same relfilenode, so the follow does not see it) and emptied WITH NO DATA:
        # the freeze compares every view and brings the target's in line.
        source_db.execute("INSERT INTO sales VALUES (5000, 'r0', 1000)")
        source_db.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY totals; REFRESH MATERIALIZED VIEW later WITH NO DATA")
        with (
            psycopg.connect(source_db.url, autocommit=True) as src,
            psycopg.connect(target_db.url, autocommit=True) as dst,
        ):
            fence = raise_fence(src, CaptureSettings(), grace_seconds=0.5)
            drain_to_marker(src, dst, fence.marker)
            sync_sequences(src, dst)
            assert sorted(sync_matviews(src, dst)) == ["public.later", "public.totals"]
            lower_fence(src)
        assert _totals(target_db) == _totals(source_db)
        assert target_db.scalar("SELECT relispopulated FROM pg_class WHERE relname = 'later'") is False
        report = verify_databases(source_db.url, target_db.url, mode="full")
        assert report.identical, [str(d) for d in report.differences]
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)
