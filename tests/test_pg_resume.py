"""kill -9 in the middle of a copy, then --resume: finished parts stay, the rest arrives."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psycopg

from migration.postgres import verify_databases
from tests.conftest import Database
from tests.helpers import ferry

# A CHECK constraint that sleeps now and then slows loading enough to kill mid-copy.
SLOW_SOURCE = """
CREATE FUNCTION slow_ok(n bigint) RETURNS boolean LANGUAGE sql AS
  $$ SELECT CASE WHEN n % 2000 = 0 THEN (SELECT true FROM pg_sleep(0.03)) ELSE true END $$;
CREATE TABLE big (id bigint PRIMARY KEY CHECK (slow_ok(id)), pad text);
INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 200000) g;
CREATE TABLE small (id int PRIMARY KEY);
INSERT INTO small SELECT generate_series(1, 10);
CREATE INDEX big_pad_idx ON big (pad);
"""


def _done_parts(target: Database) -> int:
    try:
        return int(str(target.scalar("SELECT count(*) FROM _ferry.part")))
    except psycopg.errors.UndefinedTable:
        return 0


def test_resume_after_kill_9(source_db: Database, target_db: Database) -> None:
    source_db.execute(SLOW_SOURCE)
    args = [
        "pg",
        "copy",
        "--source",
        source_db.url,
        "--target",
        target_db.url,
        "--jobs",
        "1",
        "--split-tables-larger-than",
        "512kB",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "migration", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while _done_parts(target_db) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _done_parts(target_db)
    assert 3 <= done_before < 40, "the copy was not interrupted mid-way"
    xmins = [r[0] for r in target_db.execute("SELECT DISTINCT xmin::text FROM big")]
    rows_before = target_db.scalar("SELECT count(*) FROM big")
    state = str(target_db.execute("SELECT source, snapshot::text, plan::text FROM _ferry.run"))
    assert source_db.cluster.password not in state

    # a plain copy refuses the half-done target instead of clobbering it
    refused = ferry(*args)
    assert refused.code == 2 and "--resume" in refused.stderr

    resumed = ferry(*args, "--resume", "--json")
    assert resumed.code == 0, resumed.stderr
    summary = resumed.json
    big = next(t for t in summary["tables"] if t["name"] == "public.big")
    assert big["resumed_parts"] >= done_before - 1 and big["rows"] == 200000
    assert summary["resumed"] is True and summary["consistent"] is False
    # rows of the parts finished before the kill were not copied again
    kept = target_db.scalar("SELECT count(*) FROM big WHERE xmin::text = ANY(%s)", (xmins,))
    assert kept == rows_before
    assert verify_databases(source_db.url, target_db.url, mode="full").identical
    assert target_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = '_ferry'") == 0


def test_resume_with_nothing_to_resume(source_db: Database, target_db: Database) -> None:
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--resume")
    assert run.code == 2 and "target: no unfinished copy to resume" in run.stderr
