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


# A second split table, copied after the first (it is smaller): killed in its middle, it is copied again whole.
SECOND_SPLIT = """
CREATE TABLE big2 (id bigint PRIMARY KEY CHECK (slow_ok(id)), pad text);
INSERT INTO big2 SELECT g, md5(g::text) FROM generate_series(1, 100000) g;
"""


def _done_parts(target: Database) -> int:
    return len(_done_keys(target))


def _done_keys(target: Database) -> set[str]:
    try:
        return {str(r[0]) for r in target.execute("SELECT part_key FROM _ferry.part")}
    except psycopg.errors.UndefinedTable:
        return set()


def _planned(target: Database, table: str) -> set[str]:
    try:
        plan = target.scalar("SELECT plan FROM _ferry.run")
    except psycopg.errors.UndefinedTable:
        return set()
    return {p["key"] for p in plan["parts"] if p["table"] == table}  # type: ignore[index]


def test_resume_after_kill_9(source_db: Database, target_db: Database) -> None:
    source_db.execute(SLOW_SOURCE + SECOND_SPLIT)
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
    # One worker copies big's ranges, then big2's: killed once big is in and big2 is partly.
    deadline = time.monotonic() + 60
    big: set[str] = set()
    while proc.poll() is None and time.monotonic() < deadline:
        big, done = big or _planned(target_db, "public.big"), _done_keys(target_db)
        if big and big <= done and len([k for k in done if k.startswith("public.big2#")]) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = _done_keys(target_db)
    big2 = _planned(target_db, "public.big2")
    assert len(big) > 3 and big <= done_before, "the copy was not interrupted after big"
    assert 2 <= len(big2 & done_before) < len(big2), "the copy was not interrupted in the middle of big2"
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
    tables = {t["name"]: t for t in summary["tables"]}
    assert tables["public.big"]["resumed_parts"] == len(big) and tables["public.big"]["rows"] == 200000
    # big2's done ranges came from the first snapshot, the others would come from the resume's: all again.
    assert tables["public.big2"]["resumed_parts"] == 0 and tables["public.big2"]["rows"] == 100000
    assert "public.big2 copied again whole" in resumed.stderr and "public.big copied" not in resumed.stderr
    assert summary["resumed"] is True and summary["consistent"] is False
    assert summary["not_valid_foreign_keys"] == []
    # rows of the table finished before the kill were not copied again
    kept = target_db.scalar("SELECT count(*) FROM big WHERE xmin::text = ANY(%s)", (xmins,))
    assert kept == rows_before
    assert verify_databases(source_db.url, target_db.url, mode="full").identical
    assert target_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = '_ferry'") == 0


def test_resume_with_nothing_to_resume(source_db: Database, target_db: Database) -> None:
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--resume")
    assert run.code == 2 and "target: no unfinished copy to resume" in run.stderr
