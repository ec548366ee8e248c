"""Capture found by identity, not by name; and every way a table's identity can change under the follow.

A table renamed, moved to another schema, dropped, created, or rebuilt under its own name (new
table, same name, same columns) stops the follow with one line, and the fence refuses to stand
on it. An install killed half way is finished by the next copy, never accepted as complete;
status reads what is on the catalog. Two captures in two schemas live side by side, and taking
one off leaves the other's triggers alone. One follower per log and per target. A stop is
answered within a batch. A follow pointed at its own source writes nothing there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from migration.errors import PreconditionError
from migration.postgres.capture import CaptureSettings, raise_fence
from tests.conftest import Database
from tests.helpers import assert_one_line_error, ferry

SCHEMA = """
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int REFERENCES parent ON DELETE CASCADE, note text);
CREATE TABLE items (id int PRIMARY KEY, v text);
CREATE SCHEMA archive;
INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 30) g;
INSERT INTO child SELECT g, 1 + g % 30, 'c' || g FROM generate_series(1, 60) g;
INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 50) g;
"""


def _follower(source: Database, target: Database, status: Path, *extra: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "migration", "pg", "follow", "--source", source.url, "--target", target.url,
               "--status-file", str(status), *extra]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc
        try:
            if json.loads(status.read_text())["phase"] == "live":
                return proc
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("the follower never got live")


def _copied(source: Database, target: Database) -> None:
    source.execute(SCHEMA)
    copied = ferry("pg", "copy", "--source", source.url, "--target", target.url, "--follow-seconds", "0")
    assert copied.code == 0, copied.output


IDENTITY_CHANGES = {
    "rebuilt": (
        "CREATE TABLE items_new (LIKE items INCLUDING ALL); INSERT INTO items_new SELECT * FROM items;"
        "DROP TABLE items; ALTER TABLE items_new RENAME TO items",
        "public.items was rebuilt",
    ),
    "renamed": ("ALTER TABLE items RENAME TO items_renamed", "public.items was renamed to public.items_renamed"),
    "moved to another schema": ("ALTER TABLE items SET SCHEMA archive", "renamed to archive.items"),
    "dropped": ("DROP TABLE items", "public.items was dropped"),
    "created": ("CREATE TABLE fresh (id int PRIMARY KEY)", "public.fresh was created"),
    "trigger disabled": ("ALTER TABLE items DISABLE TRIGGER USER", "capture trigger of public.items is disabled"),
    "trigger off and on again": (
        "ALTER TABLE items DISABLE TRIGGER ferry_capture_row; UPDATE items SET v = 'unlogged' WHERE id = 1;"
        "ALTER TABLE items ENABLE ALWAYS TRIGGER ferry_capture_row",
        "capture trigger of public.items was altered since install",
    ),
    "function replaced": (
        "CREATE OR REPLACE FUNCTION ferry_capture.log_statement() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RETURN NULL; END $$",
        "capture's trigger function for",
    ),
}


@pytest.mark.parametrize("change", sorted(IDENTITY_CHANGES))
def test_a_table_s_identity_changing_stops_the_follow_and_the_fence(
    change: str, source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    _copied(source_db, target_db)
    ddl, said = IDENTITY_CHANGES[change]
    try:
        proc = _follower(source_db, target_db, tmp_path / "status.json")
        try:
            source_db.execute(ddl)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 2, err
        assert said in err.strip().splitlines()[-1], err
        assert json.loads((tmp_path / "status.json").read_text())["consistent"] is False
        # A follower started again refuses too, and so does the fence: it would not cover the table.
        again = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "0")
        assert_one_line_error(again, "source:", "no longer covers the source")
        with psycopg.connect(source_db.url, autocommit=True) as src:
            with pytest.raises(PreconditionError, match="no longer covers the source"):
                raise_fence(src, CaptureSettings())
            assert src.execute("SELECT count(*) FROM ferry_capture.fence").fetchone() == (0,)
        status = ferry("pg", "capture", "status", "--source", source_db.url, "--json")
        assert status.code == 0 and status.json["problems"], status.output
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)


def test_a_killed_install_is_finished_by_the_next_copy_never_taken_as_complete(
    source_db: Database, target_db: Database
) -> None:
    _copied_schema = SCHEMA + "".join(f"CREATE TABLE t{i} (id int PRIMARY KEY, v text);" for i in range(20))
    source_db.execute(_copied_schema)
    try:
        killed = ferry("pg", "capture", "install", "--source", source_db.url,
                       env={**os.environ, "FERRY_CRASH_AT": "capture-table-installed:5"})  # fmt: skip
        assert killed.code == -9
        status = ferry("pg", "capture", "status", "--source", source_db.url, "--json").json
        assert len(status["captured"]) == 5 and len(status["uncaptured"]) == 18
        assert any("was created since capture was installed" in p for p in status["problems"])
        # A follow (or the fence) on a half install would leave 18 tables unfollowed and unfenced.
        refused = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "0")
        assert_one_line_error(refused, "source:", "no longer covers the source")
        copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
        assert copied.code == 0, copied.output
        status = ferry("pg", "capture", "status", "--source", source_db.url, "--json").json
        assert len(status["captured"]) == 23 and status["problems"] == []
        source_db.execute("INSERT INTO t19 VALUES (1, 'followed')")  # a table the killed install had not reached
        assert ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "0").code == 0
        assert target_db.scalar("SELECT v FROM t19 WHERE id = 1") == "followed"
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)


def test_status_after_a_remove_that_gave_up_reads_the_catalog(source_db: Database) -> None:
    source_db.execute(SCHEMA)
    assert ferry("pg", "capture", "install", "--source", source_db.url).code == 0
    killed = ferry("pg", "capture", "remove", "--source", source_db.url,
                   env={**os.environ, "FERRY_CRASH_AT": "capture-table-removed"})  # fmt: skip
    assert killed.code == -9
    status = ferry("pg", "capture", "status", "--source", source_db.url, "--json").json
    still = source_db.execute(
        "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'ferry_capture' AND p.proname LIKE 'log_row%'"
    )
    assert sorted(status["captured"]) == sorted(f"public.{r[0]}" for r in still) and len(still) == 2
    assert any("is gone" in p for p in status["problems"])
    assert ferry("pg", "capture", "remove", "--source", source_db.url).code == 0
    assert source_db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'ferry%'") == 0


def test_two_captures_in_two_schemas_live_side_by_side(source_db: Database) -> None:
    """Matched by identity: taking one off leaves the other's triggers, and the app's own trigger of a
    look-alike name."""
    source_db.execute(SCHEMA)
    assert ferry("pg", "capture", "install", "--source", source_db.url).code == 0
    second = ferry("pg", "capture", "install", "--source", source_db.url, "--capture-schema", "other_capture")
    assert second.code == 0, second.output
    source_db.execute("UPDATE items SET v = 'both see it' WHERE id = 1")
    assert source_db.scalar("SELECT count(*) FROM ferry_capture.log") == 1
    assert source_db.scalar("SELECT count(*) FROM other_capture.log") == 1
    source_db.execute(
        "CREATE TABLE late (id int PRIMARY KEY);"
        "CREATE FUNCTION app_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;"
        "CREATE TRIGGER other_capture_row AFTER UPDATE ON late FOR EACH ROW EXECUTE FUNCTION app_noop();"
        "CREATE TRIGGER ferry_capture_row AFTER UPDATE ON late FOR EACH ROW EXECUTE FUNCTION app_noop()"
    )
    assert ferry("pg", "capture", "remove", "--source", source_db.url, "--capture-schema", "other_capture").code == 0
    status = ferry("pg", "capture", "status", "--source", source_db.url, "--json").json
    assert "public.items" in status["captured"]
    assert status["problems"] == [
        "public.late was created since capture was installed (it has no triggers of capture's)"
    ]
    assert source_db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname = 'ferry_capture_row'") == 4
    assert ferry("pg", "capture", "remove", "--source", source_db.url).code == 0
    assert source_db.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'late'::regclass ORDER BY 1") == [
        ("ferry_capture_row",),
        ("other_capture_row",),
    ]


def test_a_follower_started_right_after_a_kill_waits_for_the_dead_ones_claim(
    source_db: Database, target_db: Database
) -> None:
    """A ``kill -9``'d follower's server session outlives it until its statement ends, claim and all: the
    next follower waits for it instead of refusing (a loaded chaos run stopped there)."""
    import threading

    from migration.postgres.capture.claim import _SOURCE_CLASS

    _copied(source_db, target_db)
    try:
        lingering = psycopg.connect(source_db.url, autocommit=True)
        oid = source_db.scalar("SELECT oid::int FROM pg_namespace WHERE nspname = 'ferry_capture'")
        lingering.execute("SELECT pg_advisory_lock(%s, %s)", (_SOURCE_CLASS, oid))
        timer = threading.Timer(2.0, lingering.close)  # its statement ends, the server ends the session
        timer.start()
        started = time.monotonic()
        run = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "0")
        assert run.code == 0, run.output
        assert time.monotonic() - started >= 2.0
        timer.join()
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)


def test_a_second_follower_is_refused_and_the_first_goes_on(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    _copied(source_db, target_db)
    try:
        first = _follower(source_db, target_db, tmp_path / "first.json")
        try:
            second = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "0")
            assert_one_line_error(second, "another ferry follower is applying")
            source_db.execute("UPDATE items SET v = 'the first one carries it' WHERE id = 2")
            deadline = time.monotonic() + 30
            while target_db.scalar("SELECT v FROM items WHERE id = 2") != "the first one carries it":
                assert first.poll() is None and time.monotonic() < deadline, first.stderr
                time.sleep(0.1)
        finally:
            first.send_signal(signal.SIGTERM)
            first.communicate(timeout=60)
        assert first.returncode == 0
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)


def test_a_stop_is_answered_within_a_batch_whatever_the_backlog(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    _copied(source_db, target_db)
    try:
        source_db.execute("INSERT INTO items SELECT g, 'bulk' FROM generate_series(1000, 200999) g")
        proc = _follower(source_db, target_db, tmp_path / "status.json", "--batch", "1000")
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        proc.communicate(timeout=60)
        assert proc.returncode == 0 and time.monotonic() - started < 10
        left = source_db.scalar("SELECT count(*) FROM ferry_capture.log")
        assert isinstance(left, int) and left > 150_000  # the rest waits in the log for the next follower
        assert json.loads((tmp_path / "status.json").read_text())["consistent"] is False
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)


def test_a_follow_into_its_own_source_writes_nothing_there(source_db: Database, target_db: Database) -> None:
    _copied(source_db, target_db)
    try:
        socket_dir = quote(str(source_db.cluster.datadir.parent), safe="")
        spellings = [source_db.url.replace("127.0.0.1", "localhost"),
                     f"postgresql://ferry:{source_db.cluster.password}@/{source_db.name}"
                     f"?host={socket_dir}&port={source_db.cluster.port}"]  # fmt: skip
        for url in spellings:
            refused = ferry("pg", "follow", "--source", source_db.url, "--target", url, "--seconds", "0")
            assert_one_line_error(refused, "target:", "is the source database itself")
        assert source_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = '_ferry_follow'") == 0
        assert source_db.scalar("SELECT count(*) FROM pg_constraint WHERE contype = 'f'") == 1
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)


def test_a_copy_made_before_capture_went_in_is_not_followed(source_db: Database, target_db: Database) -> None:
    source_db.execute(SCHEMA)
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url).code == 0
    try:
        source_db.execute("UPDATE items SET v = 'written before capture: in no log' WHERE id = 3")
        assert ferry("pg", "capture", "install", "--source", source_db.url).code == 0
        refused = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "0")
        assert_one_line_error(refused, "copy again, then follow")
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)
