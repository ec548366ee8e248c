"""The fence: every role's writes refused, transactions open across it ended, drained to a marker."""

from __future__ import annotations

import psycopg
import pytest

from migration.errors import PreconditionError
from migration.postgres import verify_databases
from migration.postgres.capture import CaptureSettings, drain_to_marker, lower_fence, raise_fence, sync_sequences
from tests.conftest import Database
from tests.helpers import assert_one_line_error, ferry

SCHEMA = """
CREATE TABLE orders (id int PRIMARY KEY, note text);
CREATE TABLE no_key (v text);
INSERT INTO orders SELECT g, 'o' || g FROM generate_series(1, 100) g;
INSERT INTO no_key VALUES ('x');
CREATE ROLE fence_writer LOGIN PASSWORD 'fw-pw';
GRANT INSERT, UPDATE, SELECT ON orders, no_key TO fence_writer;
"""


def test_the_fence_refuses_every_role_ends_old_transactions_and_drains(
    source_db: Database, target_db: Database
) -> None:
    source_db.execute(SCHEMA)
    try:
        copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
        assert copied.code == 0, copied.output
        source_db.execute("UPDATE orders SET note = 'before the fence' WHERE id <= 10")
        other = source_db.cluster.url(source_db.name, user="fence_writer", password="fw-pw")
        # A transaction open across the fence, with a snapshot taken before it.
        across = psycopg.connect(other)
        across.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        across.execute("SELECT count(*) FROM orders")
        with (
            psycopg.connect(source_db.url, autocommit=True) as src,
            psycopg.connect(target_db.url, autocommit=True) as dst,
        ):
            fence = raise_fence(src, CaptureSettings(), grace_seconds=0.5)
            assert fence.ended == 1
            status = ferry("pg", "capture", "status", "--source", source_db.url)
            assert status.code == 0 and "the FENCE IS UP" in status.stdout
            with pytest.raises(psycopg.OperationalError):
                across.execute("UPDATE orders SET note = 'lost?' WHERE id = 50")  # its session was ended
            for url in (source_db.url, other):  # the owner and another role alike
                with psycopg.connect(url, autocommit=True) as conn:
                    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ferry fence"):
                        conn.execute("UPDATE orders SET note = 'after the fence' WHERE id = 1")
                    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ferry fence"):
                        conn.execute("INSERT INTO no_key VALUES ('y')")
            assert src.execute("SELECT count(*) FROM orders WHERE note = 'after the fence'").fetchone() == (0,)
            drained = drain_to_marker(src, dst, fence.marker)
            assert drained >= 10
            assert src.execute("SELECT count(*) FROM ferry_capture.log").fetchone() == (0,)
            sync_sequences(src, dst)
            report = verify_databases(source_db.url, target_db.url, mode="full")
            assert report.identical, [str(d) for d in report.differences]
            lower_fence(src)
            assert ferry("pg", "capture", "status", "--source", source_db.url, "--json").json["fenced"] is False
        with psycopg.connect(other, autocommit=True) as conn:
            conn.execute("UPDATE orders SET note = 'after the fence was lowered' WHERE id = 1")
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)
        source_db.execute("DROP OWNED BY fence_writer; DROP ROLE fence_writer")


def test_large_objects_written_while_live_are_copied_again_inside_the_freeze(
    source_db: Database, target_db: Database
) -> None:
    """No trigger sees pg_largeobject: the final sync compares every large object and copies what differs."""
    from migration.postgres.capture import sync_large_objects, verify_changes, verify_live

    source_db.execute(
        "CREATE TABLE docs (id int PRIMARY KEY, blob oid);"
        "SELECT lo_from_bytea(1001, 'kept'); SELECT lo_from_bytea(1002, 'changed later');"
        "SELECT lo_from_bytea(1003, 'removed later')"
    )
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
    assert copied.code == 0, copied.output
    try:
        source_db.execute(
            "SELECT lo_put(1002, 0, 'CHANGED'); SELECT lo_unlink(1003);"
            "SELECT lo_from_bytea(1004, repeat('new ', 400000)::bytea)"
        )
        # Written while live: not a schema change, and the live pass goes on (the freeze copies them).
        assert verify_live(source_db.url, target_db.url, jobs=2).report.identical
        behind = verify_changes(source_db.url, target_db.url, through=0)
        assert {d.name for d in behind.differences if d.kind == "large object"} == {"1002", "1003", "1004"}
        with (
            psycopg.connect(source_db.url, autocommit=True) as src,
            psycopg.connect(target_db.url, autocommit=True) as dst,
        ):
            assert sync_large_objects(src, dst) == 3
            assert sync_large_objects(src, dst) == 0
        report = verify_databases(source_db.url, target_db.url, mode="full")
        assert report.identical, [str(d) for d in report.differences]
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)


def test_capture_installed_by_an_earlier_ferry_is_refused_before_following_and_fencing(
    source_db: Database, target_db: Database
) -> None:
    """Its triggers call one shared function this fence does not replace: writes would pass the fence."""
    source_db.execute(SCHEMA.split("CREATE ROLE")[0])
    try:
        copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
        assert copied.code == 0, copied.output
        source_db.execute(  # what the earlier layouts left: no record of their layout (one had a generic function)
            "DROP TABLE ferry_capture.layout;"
            "CREATE FUNCTION ferry_capture.log_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$"
        )
        followed = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "0")
        assert_one_line_error(followed, "source:", "installed by another version of ferry", "ferry pg capture remove")
        with psycopg.connect(source_db.url, autocommit=True) as src:
            with pytest.raises(PreconditionError, match="another version of ferry"):
                raise_fence(src)
            assert src.execute("SELECT count(*) FROM ferry_capture.fence").fetchone() == (0,)
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)
