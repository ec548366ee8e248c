"""Applying the change log to a copied target: every kind of change arrives, in any commit order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from migration.postgres import verify_databases
from migration.postgres.capture.apply import apply_batch, prepare_target, sync_sequences
from tests.conftest import Database
from tests.helpers import assert_one_line_error, ferry

SCHEMA = """
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent, note text);
CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text UNIQUE NOT NULL,
                    created timestamptz DEFAULT now());
CREATE TABLE plain (id int PRIMARY KEY, v text, v_upper text GENERATED ALWAYS AS (upper(v)) STORED);
CREATE TABLE "Odd Name" ("Key Col" text PRIMARY KEY, "value" int);
INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 50) g;
INSERT INTO child SELECT g, 1 + g % 50, 'c' || g FROM generate_series(1, 200) g;
INSERT INTO users (email) SELECT 'u' || g || '@x' FROM generate_series(1, 20) g;
INSERT INTO plain SELECT g, 'v' || g FROM generate_series(1, 100) g;
INSERT INTO "Odd Name" VALUES ('a b', 1), ('c"d', 2);
"""


def _drain(source: Database, target: Database, limit: int = 40) -> int:
    applied = 0
    with psycopg.connect(source.url, autocommit=True) as src, psycopg.connect(target.url, autocommit=True) as dst:
        prepare_target(dst)
        while (result := apply_batch(src, dst, "ferry_capture", limit=limit)).entries:
            applied += result.entries
    return applied


def test_changes_after_the_copy_arrive_whatever_their_commit_order(source_db: Database, target_db: Database) -> None:
    source_db.execute(SCHEMA)
    assert ferry("pg", "capture", "install", "--source", source_db.url).code == 0
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url)
    assert copied.code == 0, copied.output
    assert target_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_capture'") == 0
    assert target_db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'ferry_capture%'") == 0

    # A transaction that logs first and commits last: its entry has the lowest id.
    late = psycopg.connect(source_db.url)
    late.execute("INSERT INTO plain (id, v) VALUES (1000, 'committed late')")
    source_db.execute("INSERT INTO plain (id, v) VALUES (1001, 'committed early')")
    source_db.execute("UPDATE plain SET v = 'changed' WHERE id BETWEEN 10 AND 30")
    source_db.execute("UPDATE plain SET id = 5000 WHERE id = 40")  # a key update
    source_db.execute("DELETE FROM child WHERE parent_id = 7; DELETE FROM parent WHERE id = 7")
    source_db.execute("INSERT INTO parent VALUES (99, 'new'); INSERT INTO child VALUES (999, 99, 'new child')")
    # Two users swap e-mail addresses in three transactions, through a third value.
    source_db.execute("UPDATE users SET email = 'swap@x' WHERE id = 1")
    source_db.execute("UPDATE users SET email = 'u1@x' WHERE id = 2")
    source_db.execute("UPDATE users SET email = 'u2@x' WHERE id = 1")
    source_db.execute("INSERT INTO users (email) VALUES ('new@x')")
    source_db.execute("""UPDATE "Odd Name" SET "value" = 3 WHERE "Key Col" = 'c"d'""")
    first = _drain(source_db, target_db)
    assert first > 0
    assert target_db.scalar("SELECT count(*) FROM plain WHERE id = 1000") == 0  # not committed yet: not seen
    late.commit()
    late.close()
    source_db.execute("TRUNCATE child")
    source_db.execute("INSERT INTO child VALUES (1, 99, 'after truncate')")
    assert _drain(source_db, target_db) > 0
    assert source_db.scalar("SELECT count(*) FROM ferry_capture.log") == 0
    # Rows are all there; sequences are the fence's to copy (their state, not max(column)).
    behind = verify_databases(source_db.url, target_db.url, mode="full")
    assert {d.kind for d in behind.differences} == {"sequence"}
    with psycopg.connect(source_db.url, autocommit=True) as src, psycopg.connect(target_db.url, autocommit=True) as dst:
        assert sync_sequences(src, dst) == 1  # the identity column's
    report = verify_databases(source_db.url, target_db.url, mode="full")
    assert report.identical, [str(d) for d in report.differences]
    assert target_db.scalar("SELECT v FROM plain WHERE id = 1000") == "committed late"
    assert target_db.scalar("SELECT v_upper FROM plain WHERE id = 10") == "CHANGED"


def test_a_batch_applied_twice_changes_nothing(source_db: Database, target_db: Database) -> None:
    """The crash between the target's commit and the source's clearing: the batch comes again."""
    source_db.execute(SCHEMA)
    assert ferry("pg", "capture", "install", "--source", source_db.url).code == 0
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url).code == 0
    source_db.execute("UPDATE parent SET name = 'once' WHERE id = 3; DELETE FROM child WHERE id = 5")
    entries = source_db.execute("SELECT rel, op, old_key, new_key FROM ferry_capture.log")
    assert _drain(source_db, target_db) == 2
    # Put the same entries back, as if the clearing had never happened, and apply them again.
    for row in entries:
        source_db.execute(
            "INSERT INTO ferry_capture.log (rel, op, old_key, new_key) VALUES (%s, %s, %s, %s)",
            (row[0], row[1], psycopg.types.json.Jsonb(row[2]) if row[2] else None,
             psycopg.types.json.Jsonb(row[3]) if row[3] else None),
        )  # fmt: skip
    assert _drain(source_db, target_db) == 2
    report = verify_databases(source_db.url, target_db.url, mode="full")
    assert report.identical, [str(d) for d in report.differences]


def test_unique_values_swapped_across_batches_arrive(source_db: Database, target_db: Database) -> None:
    """One entry per batch: the first re-read brings a value another target row still holds."""
    source_db.execute(SCHEMA)
    assert ferry("pg", "capture", "install", "--source", source_db.url).code == 0
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url).code == 0
    source_db.execute("UPDATE users SET email = 'swap@x' WHERE id = 1")
    source_db.execute("UPDATE users SET email = 'u1@x' WHERE id = 2")
    source_db.execute("UPDATE users SET email = 'u2@x' WHERE id = 1")
    assert _drain(source_db, target_db, limit=1) == 3
    assert target_db.execute("SELECT id, email FROM users WHERE id <= 2 ORDER BY id") == [(1, "u2@x"), (2, "u1@x")]


def test_ranges_an_exclusion_constraint_keeps_apart_swapped_across_batches_arrive(
    source_db: Database, target_db: Database
) -> None:
    """As for unique values: two bookings of one room trade their time slots through a third."""
    source_db.execute(
        "CREATE EXTENSION IF NOT EXISTS btree_gist;"
        "CREATE TABLE bookings (id int PRIMARY KEY, room int NOT NULL, during tstzrange NOT NULL,"
        " EXCLUDE USING gist (room WITH =, during WITH &&));"
        "INSERT INTO bookings VALUES (1, 7, '[2024-01-01 10:00, 2024-01-01 11:00)'),"
        " (2, 7, '[2024-01-01 12:00, 2024-01-01 13:00)'), (3, 8, '[2024-01-01 10:00, 2024-01-01 11:00)')"
    )
    assert ferry("pg", "capture", "install", "--source", source_db.url).code == 0
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url).code == 0
    source_db.execute("UPDATE bookings SET during = '[2024-01-02 00:00, 2024-01-02 01:00)' WHERE id = 1")
    source_db.execute("UPDATE bookings SET during = '[2024-01-01 10:00, 2024-01-01 11:00)' WHERE id = 2")
    source_db.execute("UPDATE bookings SET during = '[2024-01-01 12:00, 2024-01-01 13:00)' WHERE id = 1")
    assert _drain(source_db, target_db, limit=1) == 3
    report = verify_databases(source_db.url, target_db.url, mode="full")
    assert report.identical, [str(d) for d in report.differences]


def _write_while(source: Database, stop: threading.Event) -> None:
    with psycopg.connect(source.url, autocommit=True) as conn:
        i = 0
        while not stop.is_set():
            conn.execute("INSERT INTO plain (id, v) VALUES (%s, 'live') ON CONFLICT (id) DO UPDATE SET v = 'again'",
                         (10_000 + i % 300,))  # fmt: skip
            conn.execute("UPDATE child SET note = %s WHERE id = %s", (f"n{i}", 1 + i % 200))
            i += 1
            time.sleep(0.005)


def _sequences_only(source: Database, target: Database) -> None:
    report = verify_databases(source.url, target.url, mode="full")
    assert {d.kind for d in report.differences} <= {"sequence"}, [str(d) for d in report.differences]


def test_copy_follow_carries_writes_made_during_and_after_the_copy(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    source_db.execute(SCHEMA)
    stop = threading.Event()
    writer = threading.Thread(target=_write_while, args=(source_db, stop))
    writer.start()
    try:
        status = tmp_path / "follow.json"
        run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "2",
                    "--status-file", str(status), "--json")  # fmt: skip
    finally:
        stop.set()
        writer.join()
    assert run.code == 0, run.output
    assert run.json["follow"]["entries"] > 0 and json.loads(status.read_text())["phase"] == "stopped"
    drained = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "0", "--json")
    assert drained.code == 0 and drained.json["consistent"] is True, drained.output
    _sequences_only(source_db, target_db)


def test_a_timed_follow_applies_everything_logged_by_its_end_and_no_more(
    source_db: Database, target_db: Database
) -> None:
    """``--seconds 0`` against a backlog and a writer that never stops: it ends, and nothing logged
    before its time ran out is left behind (a cap on the time past the deadline once left some)."""
    source_db.execute(SCHEMA)
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
    assert copied.code == 0, copied.output
    source_db.execute("INSERT INTO plain SELECT g, 'backlog' FROM generate_series(100000, 119999) g")
    stop = threading.Event()
    writer = threading.Thread(target=_write_while, args=(source_db, stop))
    writer.start()
    try:
        run = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "0",
                    "--batch", "20", "--json")  # fmt: skip
        assert run.code == 0, run.output
        assert writer.is_alive()  # it ended while the writer still wrote
    finally:
        stop.set()
        writer.join()
    assert target_db.scalar("SELECT count(*) FROM plain WHERE v = 'backlog'") == 20_000
    assert run.json["entries"] >= 20_000


def test_sequences_sync_leaves_every_capture_schema_out_whatever_its_name(
    source_db: Database, target_db: Database
) -> None:
    """A capture installed under ``--capture-schema`` has a sequence of its own, which the copy leaves behind."""
    source_db.execute(SCHEMA)
    installed = ferry("pg", "capture", "install", "--source", source_db.url, "--capture-schema", "theirs")
    assert installed.code == 0, installed.output
    try:
        assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url).code == 0
        source_db.execute("INSERT INTO users (email) VALUES ('late@x')")
        with psycopg.connect(source_db.url, autocommit=True) as src, psycopg.connect(target_db.url) as dst:
            assert sync_sequences(src, dst) == 1  # users' identity, and not theirs.log's
            dst.commit()
        assert target_db.scalar("SELECT last_value FROM users_id_seq") == 21
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url, "--capture-schema", "theirs")


@pytest.mark.parametrize(
    "step",
    ["follow-batch-applying", "follow-batch-committed", "follow-batch-cleared", "follow-batch-committed:3"],
)
def test_a_follow_killed_at_any_step_goes_on(step: str, source_db: Database, target_db: Database) -> None:
    source_db.execute(SCHEMA)
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0").code == 0
    source_db.execute("UPDATE parent SET name = 'killed' WHERE id < 20; DELETE FROM child WHERE id > 150")
    source_db.execute("UPDATE users SET email = 'swap@x' WHERE id = 1; UPDATE users SET email = 'u1@x' WHERE id = 2")
    source_db.execute("UPDATE users SET email = 'u2@x' WHERE id = 1; TRUNCATE plain")
    env = {**os.environ, "FERRY_CRASH_AT": step}
    killed = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--batch", "10",
                   "--seconds", "0", env=env)  # fmt: skip
    assert killed.code == -9
    assert source_db.scalar("SELECT count(*) FROM ferry_capture.log") > 0  # more batches were left
    again = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "0")
    assert again.code == 0, again.output
    _sequences_only(source_db, target_db)


@pytest.mark.parametrize("step", ["constraints-pausing", "constraints-restoring", "constraint-validated"])
def test_a_follow_killed_while_it_takes_foreign_keys_off_or_puts_them_back_goes_on(
    step: str, source_db: Database, target_db: Database
) -> None:
    """A role without replica mode: the keys' record and the catalog change commit together."""
    source_db.execute(SCHEMA + "CREATE TABLE second_child (id int PRIMARY KEY, parent_id int REFERENCES parent);")
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0").code == 0
    target_db.execute(
        "DROP TABLE _ferry_follow.batches, _ferry_follow.changed, _ferry_follow.foreign_keys, _ferry_follow.triggers;"
        "DROP ROLE IF EXISTS follow_kill; CREATE ROLE follow_kill LOGIN PASSWORD 'fk';"
        "ALTER SCHEMA _ferry_follow OWNER TO follow_kill; ALTER TABLE _ferry_follow.copied OWNER TO follow_kill; ALTER TABLE _ferry_follow.views OWNER TO follow_kill;"
        f'GRANT CREATE ON DATABASE "{target_db.name}" TO follow_kill; GRANT USAGE, CREATE ON SCHEMA public TO follow_kill;'
        + "".join(f"ALTER TABLE {t} OWNER TO follow_kill;"
                  for t in ("parent", "child", "users", "plain", '"Odd Name"', "second_child"))
    )  # fmt: skip
    plain = target_db.cluster.url(target_db.name, user="follow_kill", password="fk")
    try:
        source_db.execute("UPDATE child SET note = 'x' WHERE id = 1")
        source_db.execute("INSERT INTO parent VALUES (100, 'new'); INSERT INTO child VALUES (1000, 100, 'new child')")
        env = {**os.environ, "FERRY_CRASH_AT": step}
        killed = ferry("pg", "follow", "--source", source_db.url, "--target", plain, "--seconds", "0", env=env)
        assert killed.code == -9
        again = ferry("pg", "follow", "--source", source_db.url, "--target", plain, "--seconds", "0")
        assert again.code == 0, again.output
        keys = target_db.execute("SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f' ORDER BY 1")
        assert keys == [("child_parent_id_fkey", True), ("second_child_parent_id_fkey", True)]
        _sequences_only(source_db, target_db)
    finally:
        target_db.execute("REASSIGN OWNED BY follow_kill TO CURRENT_USER; DROP OWNED BY follow_kill")


def test_ddl_on_the_source_stops_the_follow_naming_the_change(source_db: Database, target_db: Database) -> None:
    source_db.execute(SCHEMA)
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0").code == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "migration", "pg", "follow", "--source", source_db.url, "--target", target_db.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.5)
        source_db.execute("ALTER TABLE plain ADD COLUMN extra int")
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, err
    assert "the columns of public.plain changed on the source" in err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("ddl", "said"),
    [
        ("ALTER TABLE plain ADD COLUMN extra int", "the columns of public.plain changed on the source ("),
        ("ALTER TABLE plain ALTER COLUMN v SET DEFAULT 'x'", "the columns of public.plain changed on the source"),
        ("ALTER TABLE parent RENAME TO parents", "public.parent was renamed to public.parents since capture"),
        (
            "CREATE TABLE plain_new (LIKE plain INCLUDING ALL); INSERT INTO plain_new (id, v) SELECT id, v FROM plain; "
            "DROP TABLE plain; ALTER TABLE plain_new RENAME TO plain",
            "public.plain was rebuilt since capture was installed",
        ),
    ],
)
def test_ddl_while_no_follower_ran_stops_the_next_follow(
    source_db: Database, target_db: Database, ddl: str, said: str
) -> None:
    """Between the copy and the follow (or while a killed follower was down) no follower saw the DDL:
    the shape the copy recorded does."""
    source_db.execute(SCHEMA)
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0").code == 0
    source_db.execute(ddl)
    run = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "5")
    assert_one_line_error(run, said, "copy and follow again" if "capture" in said else "copy again, then follow")


def test_a_log_over_its_cap_removes_capture(source_db: Database, target_db: Database) -> None:
    source_db.execute(SCHEMA)
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0").code == 0
    source_db.execute("UPDATE plain SET v = v || '!'")
    run = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--max-log-size", "8kB",
                "--seconds", "0")  # fmt: skip
    assert_one_line_error(run, "source:", "over its cap", "capture was removed")
    assert source_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_capture'") == 0
    assert source_db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'ferry_capture%'") == 0


def test_a_parent_table_s_changes_leave_its_children_alone(source_db: Database, target_db: Database) -> None:
    """Old-style inheritance: a parent's key re-read must not pull in, nor delete, its children's rows."""
    source_db.execute(
        "CREATE TABLE vehicles (id int PRIMARY KEY, name text); CREATE TABLE trucks (payload int) INHERITS (vehicles);"
        "INSERT INTO vehicles VALUES (1, 'car'); INSERT INTO trucks VALUES (1, 'same id, a truck', 40)"
    )
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0").code == 0
    source_db.execute("UPDATE ONLY vehicles SET name = 'blue car' WHERE id = 1")
    assert _drain(source_db, target_db) == 1
    assert target_db.execute("SELECT name FROM ONLY vehicles") == [("blue car",)]
    assert target_db.execute("SELECT name FROM trucks") == [("same id, a truck",)]


KEY_TYPES = '''
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE DOMAIN required_text AS text NOT NULL;
CREATE TABLE k_uuid (id uuid PRIMARY KEY, v text, r required_text DEFAULT 'r');
CREATE TABLE k_numeric (id numeric(20, 6) PRIMARY KEY, v text);
CREATE TABLE k_time (id timestamptz PRIMARY KEY, v text);
CREATE TABLE k_bytea (id bytea PRIMARY KEY, v text);
CREATE TABLE k_char (id char(3) PRIMARY KEY, v text);
CREATE TABLE k_enum (id mood PRIMARY KEY, v text);
CREATE TABLE k_domain (id positive PRIMARY KEY, v text);
CREATE TABLE k_composite (region text, day date, seq smallint, v text, PRIMARY KEY (region, day, seq));
CREATE TABLE "k ""odd"" name" ("the ""key""" text PRIMARY KEY, "V" text);
CREATE TABLE k_unique_only (code text NOT NULL, v text);
CREATE UNIQUE INDEX ON k_unique_only (code);
INSERT INTO k_uuid SELECT ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, 'v' FROM generate_series(1, 5) g;
INSERT INTO k_numeric SELECT g + 0.123456, 'v' FROM generate_series(1, 5) g;
INSERT INTO k_time SELECT '2024-01-01 00:00:00.123456+00'::timestamptz + g * interval '1 hour', 'v'
  FROM generate_series(1, 5) g;
INSERT INTO k_bytea SELECT decode(lpad(to_hex(g), 4, '0') || '00ff', 'hex'), 'v' FROM generate_series(1, 5) g;
INSERT INTO k_char SELECT 'a' || g, 'v' FROM generate_series(1, 5) g;
INSERT INTO k_enum VALUES ('sad', 'v'), ('ok', 'v');
INSERT INTO k_domain SELECT g, 'v' FROM generate_series(1, 5) g;
INSERT INTO k_composite SELECT 'r' || (g % 2), date '2024-02-28' + g, g, 'v' FROM generate_series(1, 5) g;
INSERT INTO "k ""odd"" name" VALUES ('it''s "quoted"', 'v'), ('plain', 'v');
INSERT INTO k_unique_only VALUES ('x', 'v'), ('y', 'v');
'''


def test_keys_of_every_common_type_survive_the_log_and_the_apply(source_db: Database, target_db: Database) -> None:
    """The log holds keys as jsonb; apply turns them back into each key type to find the rows."""
    source_db.execute(KEY_TYPES)
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0").code == 0
    source_db.execute('''
        UPDATE k_uuid SET v = 'changed' WHERE id = '00000000-0000-0000-0000-000000000001';
        UPDATE k_uuid SET id = '00000000-0000-0000-0000-0000000000ff' WHERE id = '00000000-0000-0000-0000-000000000002';
        UPDATE k_numeric SET v = 'changed' WHERE id = 1.123456; DELETE FROM k_numeric WHERE id = 2.123456;
        UPDATE k_time SET v = 'changed', id = id + interval '1 microsecond' WHERE v = 'v';
        UPDATE k_bytea SET v = 'changed'; DELETE FROM k_bytea WHERE id = decode('000100ff', 'hex');
        UPDATE k_char SET id = 'zz' WHERE id = 'a1'; UPDATE k_char SET v = 'changed' WHERE id = 'a2';
        UPDATE k_enum SET id = 'happy' WHERE id = 'sad';
        UPDATE k_domain SET v = 'changed' WHERE id = 3; UPDATE k_domain SET id = 42 WHERE id = 4;
        UPDATE k_composite SET v = 'changed', seq = seq + 100 WHERE region = 'r1';
        UPDATE "k ""odd"" name" SET "V" = 'changed'; DELETE FROM "k ""odd"" name" WHERE "the ""key""" = 'plain';
        UPDATE k_unique_only SET code = 'z', v = 'changed' WHERE code = 'x';
    ''')
    assert _drain(source_db, target_db) > 20
    report = verify_databases(source_db.url, target_db.url, mode="full")
    assert report.identical, [str(d) for d in report.differences]
    assert target_db.scalar("SELECT count(*) FROM k_time WHERE v = 'changed'") == 5
    # The verify in proportion to the changes finds rows by these keys too.
    from migration.postgres.capture import verify_changes, verify_live

    live = verify_live(source_db.url, target_db.url, jobs=2)
    assert live.report.identical and not live.deferred
    source_db.execute("""
        UPDATE k_uuid SET v = 'again'; UPDATE k_numeric SET v = 'again'; UPDATE k_time SET v = 'again';
        UPDATE k_bytea SET v = 'again'; UPDATE k_char SET v = 'again'; UPDATE k_enum SET v = 'again';
        UPDATE k_domain SET v = 'again'; UPDATE k_composite SET v = 'again'; UPDATE k_unique_only SET v = 'again';
    """)
    _drain(source_db, target_db)
    again = verify_changes(source_db.url, target_db.url, through=live.through, jobs=2)
    assert again.identical and again.rows_checked >= 30, [str(d) for d in again.differences]
    target_db.execute("UPDATE k_bytea SET v = 'wrong' WHERE id = decode('000200ff', 'hex')")
    target_db.execute("UPDATE k_composite SET v = 'wrong' WHERE seq = 2")
    wrong = verify_changes(source_db.url, target_db.url, through=live.through, jobs=2)
    assert sorted(d.name for d in wrong.differences) == [
        'public.k_bytea key {"id": "\\\\x000200ff"}',
        'public.k_composite key {"day": "2024-03-01", "region": "r0", "seq": 2}',
    ]


def test_a_row_policy_that_would_hide_rows_from_the_follow_stops_it(source_db: Database, target_db: Database) -> None:
    """Forced row security on the source: the follow's role sees only some rows. Filtered reads would
    delete the hidden rows on the target; with row security off the follow stops with one line instead."""
    source_db.execute(
        "DROP ROLE IF EXISTS rls_owner; CREATE ROLE rls_owner LOGIN PASSWORD 'ro-pw';"
        "CREATE TABLE tenants_data (id int PRIMARY KEY, tenant text, v text);"
        "INSERT INTO tenants_data SELECT g, 't' || (g % 2), 'v' FROM generate_series(1, 10) g;"
        "ALTER TABLE tenants_data OWNER TO rls_owner; ALTER TABLE tenants_data ENABLE ROW LEVEL SECURITY;"
        "ALTER TABLE tenants_data FORCE ROW LEVEL SECURITY;"
        "CREATE POLICY own_tenant ON tenants_data USING (tenant = current_setting('app.tenant', true));"
    )
    try:
        assert (
            ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0").code == 0
        )
        source_db.execute(
            "GRANT USAGE ON SCHEMA ferry_capture TO rls_owner; GRANT ALL ON ALL TABLES IN SCHEMA ferry_capture TO rls_owner"
        )
        source_db.execute("UPDATE tenants_data SET v = 'changed' WHERE id IN (1, 2)")  # one row of each tenant
        as_owner = source_db.cluster.url(source_db.name, user="rls_owner", password="ro-pw")
        run = ferry("pg", "follow", "--source", as_owner, "--target", target_db.url, "--seconds", "0")
        assert_one_line_error(run, "source:", "row-level security")
        assert target_db.scalar("SELECT count(*) FROM tenants_data") == 10  # nothing deleted on the target
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)
        source_db.execute("DROP TABLE tenants_data; DROP OWNED BY rls_owner; DROP ROLE rls_owner")
