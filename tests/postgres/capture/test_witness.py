"""The fence against every write path that skips row triggers, and the witness that sees what it cannot stop.

Each bypass is tried on a fenced source after the drain, the way a hostile writer would: a role
with ``session_replication_role = replica``, the table owner disabling capture's triggers for a
moment, a transaction prepared before the fence, a large object, DDL. The fence must refuse what
it can; the witness (:func:`verify_frozen`, which reads no log) must report the rest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from migration.errors import PreconditionError
from migration.postgres import verify_databases
from migration.postgres.capture import (
    CaptureSettings,
    FenceResult,
    drain_to_marker,
    lower_fence,
    raise_fence,
    sync_sequences,
    verify_frozen,
)
from tests.conftest import Database
from tests.helpers import ferry

SCHEMA = """
CREATE TABLE orders (id int PRIMARY KEY, note text);
CREATE TABLE no_key (v text);
INSERT INTO orders SELECT g, 'o' || g FROM generate_series(1, 300) g;
INSERT INTO no_key VALUES ('x');
"""


@dataclass
class Fenced:
    source: Database
    target: Database
    fence: FenceResult

    def proof(self) -> list[str]:
        report = verify_frozen(self.source.url, self.target.url, self.fence.witness)
        return [f"{d.kind} {d.name}" for d in report.differences]


@pytest.fixture
def fenced(source_db: Database, target_db: Database) -> Iterator[Fenced]:
    """A source copied, followed, fenced and drained: identical to its target, writes refused."""
    source_db.execute(SCHEMA)
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
    assert copied.code == 0, copied.output
    source_db.execute("UPDATE orders SET note = 'before the fence' WHERE id <= 20")
    with psycopg.connect(source_db.url, autocommit=True) as src, psycopg.connect(target_db.url, autocommit=True) as dst:
        fence = raise_fence(src, CaptureSettings(), grace_seconds=0.5)
        drain_to_marker(src, dst, fence.marker)
        sync_sequences(src, dst)
    state = Fenced(source_db, target_db, fence)
    try:
        yield state
    finally:
        if source_db.execute("SELECT gid FROM pg_prepared_xacts WHERE gid = 'ferry-test'"):
            source_db.execute("ROLLBACK PREPARED 'ferry-test'")
        with psycopg.connect(source_db.url, autocommit=True) as src:
            lower_fence(src)
        ferry("pg", "capture", "remove", "--source", source_db.url)


def test_nothing_written_past_the_fence_is_proven_so(fenced: Fenced) -> None:
    assert fenced.proof() == []
    assert verify_databases(fenced.source.url, fenced.target.url, mode="full").identical


def test_replica_mode_does_not_pass_the_fence(fenced: Fenced) -> None:
    """A superuser (or a role granted SET on it) in replica mode: capture's triggers fire ALWAYS."""
    with psycopg.connect(fenced.source.url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        for write in ("UPDATE orders SET note = 'replica' WHERE id = 1", "INSERT INTO no_key VALUES ('r')",
                      "TRUNCATE no_key", "DELETE FROM orders WHERE id = 2"):  # fmt: skip
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ferry fence"):
                conn.execute(write)
    assert fenced.proof() == []


def test_the_owner_disabling_capture_for_one_write_is_seen(fenced: Fenced) -> None:
    """On Heroku the app's credential owns its tables: it can disable the triggers, write, and enable them."""
    fenced.source.execute(
        "ALTER TABLE orders DISABLE TRIGGER USER;"
        "UPDATE orders SET note = 'past the fence' WHERE id = 3;"
        "ALTER TABLE orders ENABLE ALWAYS TRIGGER ferry_capture_row;"
        "ALTER TABLE orders ENABLE ALWAYS TRIGGER ferry_capture_statement"
    )
    found = fenced.proof()
    assert any("a trigger of public.orders" in line for line in found), found


def test_a_truncate_with_capture_disabled_is_seen(fenced: Fenced) -> None:
    fenced.source.execute(
        "ALTER TABLE no_key DISABLE TRIGGER ALL; TRUNCATE no_key; ALTER TABLE no_key ENABLE TRIGGER ALL"
    )
    assert fenced.proof(), "a keyless table emptied past the fence"


def test_a_transaction_prepared_before_the_fence_refuses_it(source_db: Database, target_db: Database) -> None:
    """Its writes are logged but commit whenever someone says so, perhaps after the drain: no fence then."""
    source_db.execute(SCHEMA)
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0").code == 0
    try:
        with psycopg.connect(source_db.url, autocommit=True) as conn:
            conn.execute("BEGIN")
            conn.execute("UPDATE orders SET note = 'prepared' WHERE id = 4")
            conn.execute("PREPARE TRANSACTION 'ferry-test'")
        with psycopg.connect(source_db.url, autocommit=True) as src:
            with pytest.raises(PreconditionError, match=r"prepared transaction is open.*ferry-test"):
                raise_fence(src, CaptureSettings(), grace_seconds=0.3)
            # Refused and lowered again: the app keeps writing.
            assert src.execute("SELECT count(*) FROM ferry_capture.fence").fetchone() == (0,)
            src.execute("UPDATE orders SET note = 'written after the refusal' WHERE id = 5")
        source_db.execute("COMMIT PREPARED 'ferry-test'")
        with (
            psycopg.connect(source_db.url, autocommit=True) as src,
            psycopg.connect(target_db.url, autocommit=True) as dst,
        ):
            fence = raise_fence(src, CaptureSettings(), grace_seconds=0.3)
            drain_to_marker(src, dst, fence.marker)
            lower_fence(src)
        assert target_db.scalar("SELECT note FROM orders WHERE id = 4") == "prepared"
    finally:
        if source_db.execute("SELECT gid FROM pg_prepared_xacts WHERE gid = 'ferry-test'"):
            source_db.execute("ROLLBACK PREPARED 'ferry-test'")
        ferry("pg", "capture", "remove", "--source", source_db.url)


def test_a_transaction_prepared_during_the_freeze_is_seen(fenced: Fenced) -> None:
    with psycopg.connect(fenced.source.url, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("SELECT * FROM orders WHERE id = 6 FOR UPDATE")
        conn.execute("PREPARE TRANSACTION 'ferry-test'")
    assert any("prepared during the freeze" in line for line in fenced.proof())


def test_a_large_object_written_during_the_freeze_is_seen(fenced: Fenced) -> None:
    fenced.source.execute("SELECT lo_from_bytea(4242, 'an upload past the fence')")
    found = fenced.proof()
    assert any("large object" in line for line in found), found


@pytest.mark.parametrize(
    "ddl",
    [
        "CREATE TABLE extra (id int PRIMARY KEY); INSERT INTO extra VALUES (1)",
        "ALTER TABLE orders ADD COLUMN flag int DEFAULT 7",
        "ALTER TABLE orders RENAME TO orders_old",
        "CREATE INDEX ON orders (note)",
        "CREATE TABLE orders_new (LIKE orders); DROP TABLE orders; ALTER TABLE orders_new RENAME TO orders",
    ],
)
def test_ddl_with_the_fence_up_is_seen(fenced: Fenced, ddl: str) -> None:
    fenced.source.execute(ddl)
    assert fenced.proof(), ddl


def test_write_counters_point_at_tables_to_compare_when_others_committed(fenced: Fenced) -> None:
    """A transaction that is not ferry's commits on the server (another database here): the tables whose
    counters moved are compared in full, and a table that still matches is no difference."""
    # A temporary table (its key, index and default too) is no change to the database, and commits an xid.
    fenced.source.execute("CREATE TEMP TABLE scratch (v int PRIMARY KEY DEFAULT 1); INSERT INTO scratch DEFAULT VALUES")
    report = verify_frozen(fenced.source.url, fenced.target.url, fenced.fence.witness)
    assert report.identical, [str(d) for d in report.differences]
    assert "not ferry's committed" in report.notes[-1]


def test_another_role_s_transaction_open_across_the_fence_is_ended(source_db: Database, target_db: Database) -> None:
    """As on Heroku: ferry connects as the app's credential (owner of the tables, member of
    pg_signal_backend, no pg_read_all_stats), which cannot read another role's xact_start. A second
    credential's write, open as the fence goes up, must be ended all the same."""
    source_db.execute(SCHEMA)
    source_db.execute(
        "DROP ROLE IF EXISTS fence_app; DROP ROLE IF EXISTS fence_cred;"
        "CREATE ROLE fence_app LOGIN PASSWORD 'app-pw'; CREATE ROLE fence_cred LOGIN PASSWORD 'cred-pw';"
        "GRANT pg_signal_backend TO fence_app;"
        f'GRANT CREATE ON DATABASE "{source_db.name}" TO fence_app;'
        "ALTER TABLE orders OWNER TO fence_app; ALTER TABLE no_key OWNER TO fence_app;"
        "GRANT SELECT, UPDATE ON orders TO fence_cred"
    )
    app = source_db.cluster.url(source_db.name, user="fence_app", password="app-pw")
    cred = source_db.cluster.url(source_db.name, user="fence_cred", password="cred-pw")
    other: psycopg.Connection[tuple[object, ...]] | None = None
    try:
        assert ferry("pg", "capture", "install", "--source", app).code == 0
        copied = ferry("pg", "copy", "--source", app, "--target", target_db.url, "--follow-seconds", "0")
        assert copied.code == 0, copied.output
        other = psycopg.connect(cred)
        other.execute("UPDATE orders SET note = 'open across the fence' WHERE id = 7")
        with psycopg.connect(app, autocommit=True) as src, psycopg.connect(target_db.url, autocommit=True) as dst:
            fence = raise_fence(src, CaptureSettings(), grace_seconds=0.3)
            assert fence.ended == 1
            with pytest.raises(psycopg.OperationalError):
                other.commit()
            drain_to_marker(src, dst, fence.marker)
            lower_fence(src)
        assert source_db.scalar("SELECT note FROM orders WHERE id = 7") == "o7"
    finally:
        if other is not None:
            other.close()
        ferry("pg", "capture", "remove", "--source", source_db.url)
        source_db.execute(
            "REASSIGN OWNED BY fence_app TO CURRENT_USER; DROP OWNED BY fence_app; DROP OWNED BY fence_cred;"
            "DROP ROLE fence_app; DROP ROLE fence_cred"
        )
