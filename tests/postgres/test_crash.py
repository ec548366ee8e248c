"""kill -9 of ``ferry pg copy`` at every step, then the next run: the target ends identical.

Each named crash point (``FERRY_CRASH_AT``) kills the process with SIGKILL exactly where
a real ``kill -9`` could land: inside a transaction that has not committed, right after a
commit and before the next step records anything, between index and constraint, in the
middle of post-data. The next run is ``--resume`` when the target holds resume state, and
a plain copy (no ``--clean``) when it does not: then the crash must have left the target
exactly as empty as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psycopg
import pytest

from migration.postgres import verify_databases
from tests.conftest import Database
from tests.helpers import assert_one_line_error, ferry
from tests.postgres.test_resume import SLOW_SOURCE

STEPS = [
    "preflight",
    "schema-dumped",
    "pre-data",
    "pre-data-committed",
    "part-loading",
    "part-copied",
    "part-copied:3",
    "large-objects-loading",
    "large-objects",
    "index-built",
    "index-built:4",
    "constraint-added",
    "analyzed:2",
    "data",
    "sequences",
    "post-data-entry",
    "post-data-entry:4",
    "post-data",
    "materialized-views",
]


def _has_state(db: Database) -> bool:
    return bool(db.scalar("SELECT to_regclass('_ferry.run') IS NOT NULL"))


def _copy(source: Database, target: Database, *extra: str, crash_at: str | None = None) -> tuple[int, str]:
    env = dict(os.environ)
    env.pop("FERRY_CRASH_AT", None)
    if crash_at:
        env["FERRY_CRASH_AT"] = crash_at
    run = ferry(
        "pg", "copy", "--source", source.url, "--target", target.url, "--jobs", "2",
        "--split-tables-larger-than", "8kB", *extra, env=env,
    )  # fmt: skip
    return run.code, run.output


@pytest.mark.parametrize("step", STEPS)
def test_a_copy_killed_at_any_step_ends_identical(step: str, kitchen_sink: Database, target_db: Database) -> None:
    code, output = _copy(kitchen_sink, target_db, crash_at=step)
    assert code == -9, f"never reached {step}: {output}"
    if _has_state(target_db):
        code, output = _copy(kitchen_sink, target_db, "--resume")
    else:
        # Nothing committed that a plain copy would call "not empty".
        code, output = _copy(kitchen_sink, target_db)
    assert code == 0, output
    report = verify_databases(kitchen_sink.url, target_db.url, mode="full")
    assert report.identical, [str(d) for d in report.differences]
    assert not _has_state(target_db)


def test_state_and_schema_commit_together(kitchen_sink: Database, target_db: Database) -> None:
    """Killed inside the pre-data transaction: no table and no resume state on the target."""
    code, _ = _copy(kitchen_sink, target_db, crash_at="pre-data")
    assert code == -9
    assert not _has_state(target_db)
    assert (
        target_db.scalar("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
        == 0
    )


def test_a_second_copy_into_the_same_database_is_refused(kitchen_sink: Database, target_db: Database) -> None:
    with psycopg.connect(target_db.url, autocommit=True, application_name="ferry copy 4242") as holder:
        holder.execute("SELECT pg_advisory_lock(%s, %s)", (0x66657272, 0x79636F70))
        run = ferry("pg", "copy", "--source", kitchen_sink.url, "--target", target_db.url)
        assert_one_line_error(run, "target: another copy is running into this database (pid 4242)")
        resumed = ferry("pg", "copy", "--source", kitchen_sink.url, "--target", target_db.url, "--resume")
        assert_one_line_error(resumed, "another copy is running into this database (pid 4242)")
    assert not _has_state(target_db)


def test_sessions_of_a_killed_copy_are_ended_before_the_resume(kitchen_sink: Database, target_db: Database) -> None:
    """A killed copy's server session may still be building an index: it is ended, not raced."""
    orphan = psycopg.connect(target_db.url, autocommit=True, application_name="ferry copy 999999")
    orphan.pgconn.send_query(b"SELECT pg_sleep(120)")
    time.sleep(0.2)
    try:
        code, output = _copy(kitchen_sink, target_db)
        assert code == 0, output
        assert orphan.pgconn.status != psycopg.pq.ConnStatus.OK or orphan.pgconn.get_result() is not None
        alive = target_db.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ferry copy 999999'")
        assert alive == 0
    finally:
        orphan.close()


def test_the_resume_hint_appears_only_when_a_resume_can_finish(kitchen_sink: Database, target_db: Database) -> None:
    # Fails before anything is on the target: no hint.
    early = ferry("pg", "copy", "--source", kitchen_sink.url, "--target", target_db.url, "-t", "no_such_table")
    assert_one_line_error(early, "source:")
    assert "--resume" not in early.stderr
    # Fails after the schema and resume state are in, on a CHECK that only the source's rows meet: a
    # resume would run the same rows into the same check. No hint; and indeed the resume fails alike.
    kitchen_sink.execute("CREATE TABLE guarded (v int CHECK (current_database() LIKE 'src%'))")
    kitchen_sink.execute("INSERT INTO guarded VALUES (1)")
    late = ferry("pg", "copy", "--source", kitchen_sink.url, "--target", target_db.url)
    assert_one_line_error(late, "target:", "guarded_check")
    assert "--resume" not in late.stderr and _has_state(target_db)
    resumed = ferry("pg", "copy", "--source", kitchen_sink.url, "--target", target_db.url, "--resume")
    assert_one_line_error(resumed, "guarded_check")
    assert "no unfinished copy" not in resumed.stderr and "--resume" not in resumed.stderr


def test_the_resume_hint_appears_when_the_copy_lost_its_sessions(source_db: Database, target_db: Database) -> None:
    """The target ended the copy's sessions mid-copy (a restart, an operator): the hint, and the resume finishes."""
    source_db.execute(SLOW_SOURCE)
    args = ["pg", "copy", "--source", source_db.url, "--target", target_db.url, "--jobs", "1",
            "--split-tables-larger-than", "512kB"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "migration", *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if _has_state(target_db) and target_db.scalar("SELECT count(*) FROM _ferry.part"):
            break
        time.sleep(0.02)
    ended = target_db.scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name LIKE 'ferry copy %%'"
    )
    _, err = proc.communicate(timeout=60)
    assert ended and proc.returncode == 2, err
    errors = [line for line in err.splitlines() if line.startswith("ferry: error: ")]
    assert len(errors) == 1 and errors[0].endswith("(ferry pg copy --resume continues from here)"), err
    assert errors[0].startswith("ferry: error: target: "), errors
    resumed = ferry(*args, "--resume")
    assert resumed.code == 0, resumed.output
    assert verify_databases(source_db.url, target_db.url, mode="full").identical
