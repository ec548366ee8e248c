"""A target role that cannot pause foreign keys and triggers per batch: they come off, then back valid."""

from __future__ import annotations

import psycopg

from migration.postgres import verify_databases
from migration.postgres.capture import (
    FollowOptions,
    follow_changes,
    remove_capture,
    restore_constraints,
    sync_sequences,
    validate_constraints,
)
from migration.progress import PlainProgress
from tests.conftest import Database
from tests.helpers import ferry

SCHEMA = """
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent, note text);
CREATE TABLE audit (id serial PRIMARY KEY, child_id int NOT NULL);
CREATE FUNCTION audit_child() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO audit (child_id) VALUES (NEW.id); RETURN NEW; END $$;
CREATE TRIGGER audited AFTER INSERT ON child FOR EACH ROW EXECUTE FUNCTION audit_child();
INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 20) g;
INSERT INTO child SELECT g, 1 + g % 20, 'c' || g FROM generate_series(1, 50) g;
"""
ROLE = "follow_plain"


def _plain_owner(target: Database) -> str:
    """The target's tables owned by a role that is no superuser (cannot set session_replication_role)."""
    target.execute(
        # The copy's zero-second follow made its record as the superuser; the plain role makes its own
        # (the copy's own note of where it began stays, handed to the plain role).
        "DROP TABLE _ferry_follow.batches, _ferry_follow.changed, _ferry_follow.foreign_keys, _ferry_follow.triggers;"
        f"DROP ROLE IF EXISTS {ROLE}; CREATE ROLE {ROLE} LOGIN PASSWORD 'fp-pw';"
        f"ALTER SCHEMA _ferry_follow OWNER TO {ROLE}; ALTER TABLE _ferry_follow.copied OWNER TO {ROLE}; ALTER TABLE _ferry_follow.views OWNER TO {ROLE};"
        f'GRANT CREATE ON DATABASE "{target.name}" TO {ROLE}; GRANT USAGE, CREATE ON SCHEMA public TO {ROLE};'
        f"ALTER TABLE parent OWNER TO {ROLE}; ALTER TABLE child OWNER TO {ROLE}; ALTER TABLE audit OWNER TO {ROLE};"
        f"ALTER SEQUENCE audit_id_seq OWNER TO {ROLE}; ALTER FUNCTION audit_child() OWNER TO {ROLE}"
    )
    return target.cluster.url(target.name, user=ROLE, password="fp-pw")


def _validated(target: Database) -> bool:
    return bool(target.scalar("SELECT convalidated FROM pg_constraint WHERE conname = 'child_parent_id_fkey'"))


def test_foreign_keys_and_triggers_come_off_for_the_follow_and_back_validated(
    source_db: Database, target_db: Database
) -> None:
    source_db.execute(SCHEMA)
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
    assert copied.code == 0, copied.output
    plain = _plain_owner(target_db)
    try:
        # One batch whose first entries are child's: applied table by table, the new child row arrives
        # before the parent it points at, which a foreign key checked per statement refuses.
        source_db.execute("UPDATE child SET note = 'first' WHERE id = 1")
        source_db.execute("INSERT INTO parent VALUES (100, 'new'); INSERT INTO child VALUES (100, 100, 'new child')")
        result = follow_changes(FollowOptions(source_db.url, plain, seconds=0), PlainProgress(unit="rows"))
        assert result.entries >= 4
        # Off while following: the target's trigger did not add a second audit row for the copied child.
        assert target_db.scalar("SELECT count(*) FROM pg_constraint WHERE conname = 'child_parent_id_fkey'") == 0
        assert target_db.scalar("SELECT tgenabled FROM pg_trigger WHERE tgname = 'audited'") == "D"
        assert target_db.scalar("SELECT count(*) FROM audit") == source_db.scalar("SELECT count(*) FROM audit")
        with psycopg.connect(plain, autocommit=True) as dst, psycopg.connect(source_db.url, autocommit=True) as src:
            sync_sequences(src, dst)
            assert restore_constraints(dst) == 1
        assert target_db.scalar("SELECT tgenabled FROM pg_trigger WHERE tgname = 'audited'") == "O"
        assert not _validated(target_db)
        # Back NOT VALID: the verify says so in a note, not as a difference.
        report = verify_databases(source_db.url, target_db.url, mode="full")
        assert report.identical, [str(d) for d in report.differences]
        assert any("child_parent_id_fkey" in note and "NOT VALID" in note for note in report.notes)
        with psycopg.connect(plain, autocommit=True) as dst:
            assert validate_constraints(dst) == 1
        assert _validated(target_db)
        final = verify_databases(source_db.url, target_db.url, mode="full")
        assert final.identical and not any("NOT VALID" in note for note in final.notes)
        # `ferry pg follow` puts them back and validates them by itself when it stops.
        source_db.execute("INSERT INTO parent VALUES (101, 'again'); INSERT INTO child VALUES (101, 101, 'again')")
        run = ferry("pg", "follow", "--source", source_db.url, "--target", plain, "--seconds", "0")
        assert run.code == 0, run.output
        assert _validated(target_db)
        assert target_db.scalar("SELECT count(*) FROM child WHERE id = 101") == 1
    finally:
        remove_capture(source_db.url)
        target_db.execute(f"REASSIGN OWNED BY {ROLE} TO CURRENT_USER; DROP OWNED BY {ROLE}")


def test_a_foreign_key_of_a_partitioned_table_comes_back_valid(source_db: Database, target_db: Database) -> None:
    """A partitioned table takes no NOT VALID foreign key before PostgreSQL 18: it is added valid."""
    source_db.execute(
        SCHEMA + "CREATE TABLE events (id int, day date, parent_id int REFERENCES parent ON DELETE CASCADE,"
        " PRIMARY KEY (id, day)) PARTITION BY RANGE (day);"
        "CREATE TABLE events_a PARTITION OF events FOR VALUES FROM ('2000-01-01') TO ('2100-01-01');"
        "INSERT INTO events SELECT g, date '2024-01-01' + g, 1 + g % 20 FROM generate_series(1, 40) g"
    )
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
    assert copied.code == 0, copied.output
    plain = _plain_owner(target_db)
    target_db.execute(f"ALTER TABLE events OWNER TO {ROLE}; ALTER TABLE events_a OWNER TO {ROLE}")
    try:
        source_db.execute(
            "INSERT INTO events VALUES (100, '2024-06-01', 3); UPDATE events SET parent_id = 5 WHERE id = 1"
        )
        run = ferry("pg", "follow", "--source", source_db.url, "--target", plain, "--seconds", "0")
        assert run.code == 0, run.output
        keys = target_db.execute("SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'events'::regclass"
                                 " AND contype = 'f'")  # fmt: skip
        assert keys == [("events_parent_id_fkey", True)]
        report = verify_databases(source_db.url, target_db.url, mode="full")
        assert {d.kind for d in report.differences} <= {"sequence"}, [str(d) for d in report.differences]
    finally:
        remove_capture(source_db.url)
        target_db.execute(f"REASSIGN OWNED BY {ROLE} TO CURRENT_USER; DROP OWNED BY {ROLE}")


def test_triggers_that_fire_in_replica_mode_are_paused_too_and_come_back_as_they_were(
    source_db: Database, target_db: Database
) -> None:
    """A superuser's batches pause the target's triggers by ``session_replication_role``; an ``ENABLE ALWAYS``
    or ``ENABLE REPLICA`` trigger fires all the same, and would write rows the app never wrote."""
    source_db.execute(SCHEMA)
    source_db.execute(
        "ALTER TABLE child ENABLE ALWAYS TRIGGER audited; "
        "CREATE TABLE tally (n int); CREATE FUNCTION count_parent() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO tally VALUES (1); RETURN NEW; END $$; "
        "CREATE TRIGGER counted AFTER INSERT ON parent FOR EACH ROW EXECUTE FUNCTION count_parent(); "
        "ALTER TABLE parent ENABLE REPLICA TRIGGER counted"
    )
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
    assert copied.code == 0, copied.output
    source_db.execute("INSERT INTO parent VALUES (100, 'new'); INSERT INTO child VALUES (100, 100, 'new')")
    options = FollowOptions(source_db.url, target_db.url, seconds=0)
    followed = follow_changes(options, PlainProgress(unit="entries"))
    assert followed.entries >= 2
    # The app's audit row came with the copy's rows, and the trigger wrote none of its own on the target.
    assert target_db.scalar("SELECT count(*) FROM audit") == source_db.scalar("SELECT count(*) FROM audit") == 51
    assert target_db.scalar("SELECT count(*) FROM tally") == 0
    with psycopg.connect(target_db.url, autocommit=True) as dst:
        restore_constraints(dst)
        modes = dict(
            dst.execute("SELECT tgname::text, tgenabled::text FROM pg_trigger WHERE tgname IN ('audited', 'counted')")
        )
    assert modes == {"audited": "A", "counted": "R"}
    remove_capture(source_db.url)
