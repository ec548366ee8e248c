"""ferry pg copy against real clusters: every feature arrives, consistently."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from migration.postgres import verify_databases
from migration.postgres.catalog import read_tables
from migration.postgres.copy.plan import plan_parts
from tests.conftest import Database
from tests.helpers import ferry


def copy(source: Database, target: Database, *extra: str) -> dict[str, object]:
    run = ferry("pg", "copy", "--source", source.url, "--target", target.url, "--json", *extra)
    assert run.code == 0, run.stderr
    return dict(run.json)


def assert_identical(source: Database, target: Database) -> None:
    report = verify_databases(source.url, target.url, mode="full")
    assert report.identical, report.differences


def test_kitchen_sink_arrives_identical(kitchen_sink: Database, target_db: Database) -> None:
    summary = copy(kitchen_sink, target_db, "--jobs", "2")
    assert_identical(kitchen_sink, target_db)

    tables = {t["name"]: t for t in summary["tables"]}  # type: ignore[attr-defined]
    assert tables["sales.orders"]["rows"] == 20000 and tables["sales.orders"]["bytes"] > 0
    assert tables['"Mixed Case"."Order Items"']["rows"] == 300
    assert summary["large_objects"] == 3 and summary["materialized_views"] == 2
    assert summary["snapshot"]["snapshot_id"] and summary["snapshot"]["wal_lsn"]  # type: ignore[index]
    t = target_db
    # duplicates kept in a table without a key
    assert t.scalar("SELECT count(*) FROM events_nopk WHERE kind = 'dup'") == 5
    # generated and identity columns: values recomputed, identity continues after the copied rows
    assert t.scalar("SELECT name_upper FROM customers WHERE id = 7") == "CUSTOMER 7"
    assert t.scalar("INSERT INTO customers (name) VALUES ('new') RETURNING id") == 3001
    assert t.scalar("SELECT nextval('invoice_numbers')") == 1042
    assert t.scalar("SELECT nextval('sales.orders_id_seq')") == 20001
    # the trigger exists but did not fire while rows were loaded
    assert t.scalar("SELECT count(*) FROM audit_log") == 1
    t.execute("INSERT INTO sales.orders (customer_id, amount) VALUES (1, 1)")
    assert t.scalar("SELECT count(*) FROM audit_log") == 2
    # unlogged stays unlogged, with its rows
    assert t.scalar("SELECT relpersistence FROM pg_class WHERE oid = 'cache_entries'::regclass") == "u"
    assert t.scalar("SELECT count(*) FROM cache_entries") == 500
    # row-level security still forced, policy in place
    assert t.execute("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'secrets'::regclass") == [
        (True, True)
    ]
    # deferrable FK cycle, exclusion constraint enforced, partitions attached
    assert t.scalar("SELECT condeferrable FROM pg_constraint WHERE conname = 'chicken_egg_fk'") is True
    with pytest.raises(psycopg.errors.ExclusionViolation):
        t.execute("INSERT INTO bookings VALUES (999, 1, tstzrange('2024-01-02 00:30+00', '2024-01-02 01:00+00'))")
    assert t.scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'measurements_pkey'::regclass") == 2
    # primary keys are constraints backed by an index of the same name
    assert t.scalar("SELECT conindid::regclass::text FROM pg_constraint WHERE conname = 'customers_pkey'") == (
        "customers_pkey"
    )
    # materialized views hold data, large objects their bytes, odd values survive
    assert t.scalar("SELECT count(*) FROM top_customers") == kitchen_sink.scalar("SELECT count(*) FROM top_customers")
    assert t.scalar("SELECT t FROM odd_values WHERE id = 1") == "tab\there\nnewline\\backslash"
    assert t.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = '_ferry'") == 0
    # zero-column table, inheritance without double rows, replica identity and clustering
    assert t.scalar("SELECT count(*) FROM no_columns") == 2
    assert t.scalar("SELECT count(*) FROM ONLY vehicles") == 1 and t.scalar("SELECT count(*) FROM vehicles") == 2
    assert t.scalar("SELECT relreplident FROM pg_class WHERE oid = 'vehicles'::regclass") == "i"
    assert t.scalar("SELECT indexrelid::regclass::text FROM pg_index WHERE indisclustered") == "vehicles_pkey"


def test_source_is_only_read(kitchen_sink: Database, target_db: Database) -> None:
    """A role that can only read, in read-only transactions, is enough for the whole copy."""
    kitchen_sink.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reader') THEN "
        "CREATE ROLE reader LOGIN PASSWORD 'reader-pw' BYPASSRLS; END IF; END $$"
    )
    kitchen_sink.execute("ALTER ROLE reader SET default_transaction_read_only = on")
    kitchen_sink.execute(
        'GRANT USAGE ON SCHEMA public, sales, "Mixed Case" TO reader; '
        'GRANT SELECT ON ALL TABLES IN SCHEMA public, sales, "Mixed Case" TO reader; '
        'GRANT SELECT ON ALL SEQUENCES IN SCHEMA public, sales, "Mixed Case" TO reader; '
        "DO $$ DECLARE o oid; BEGIN FOR o IN SELECT oid FROM pg_largeobject_metadata LOOP "
        "EXECUTE format('GRANT SELECT ON LARGE OBJECT %s TO reader', o); END LOOP; END $$"
    )
    reader_url = kitchen_sink.cluster.url(kitchen_sink.name, user="reader", password="reader-pw")
    run = ferry("pg", "copy", "--source", reader_url, "--target", target_db.url, "--json")
    assert run.code == 0, run.stderr
    assert_identical(kitchen_sink, target_db)


def test_copy_is_consistent_while_the_source_takes_writes(source_db: Database, target_db: Database) -> None:
    """Pairs of rows written in one transaction arrive together or not at all."""
    source_db.execute(
        "CREATE TABLE filler (id int PRIMARY KEY, pad text);"
        "INSERT INTO filler SELECT g, repeat('x', 200) FROM generate_series(1, 150000) g;"
        "CREATE TABLE left_side (id int PRIMARY KEY); CREATE TABLE right_side (id int PRIMARY KEY);"
    )
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        with psycopg.connect(source_db.url) as conn:
            while not stop.is_set():
                written[0] += 1
                with conn.transaction():
                    conn.execute("INSERT INTO left_side VALUES (%s)", (written[0],))
                    time.sleep(0.001)
                    conn.execute("INSERT INTO right_side VALUES (%s)", (written[0],))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.3)
        copy(source_db, target_db, "--jobs", "1")
    finally:
        stop.set()
        thread.join()
    left = {r[0] for r in target_db.execute("SELECT id FROM left_side")}
    right = {r[0] for r in target_db.execute("SELECT id FROM right_side")}
    assert left == right and left
    assert len(left) < written[0], "no write happened during the copy"


def test_filters_rename_and_dangling_foreign_keys(source_db: Database, target_cluster: object) -> None:
    source_db.execute(
        "CREATE SCHEMA app; CREATE SCHEMA audit;"
        "CREATE TABLE app.users (id int PRIMARY KEY); CREATE TABLE app.logins (user_id int REFERENCES app.users);"
        "CREATE TABLE app.scratch (x int); CREATE TABLE audit.trail (user_id int REFERENCES app.users);"
        "INSERT INTO app.users SELECT generate_series(1, 10); INSERT INTO app.logins VALUES (1), (2);"
        "INSERT INTO app.scratch VALUES (1); INSERT INTO audit.trail VALUES (3);"
    )
    from tests.conftest import _new_database

    target = _new_database(target_cluster, "uniform_name")  # type: ignore[arg-type]
    run = ferry(
        "pg",
        "copy",
        "--source",
        source_db.url,
        "--target",
        target.url,
        "--schema",
        "app",
        "--exclude-table",
        "app.scratch",
    )
    assert run.code == 0, run.stderr
    tables = {
        r[0]
        for r in target.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname IN ('app', 'audit')"
        )
    }
    assert tables == {"app.users", "app.logins"}
    assert target.scalar("SELECT count(*) FROM app.logins") == 2
    assert target.scalar("SELECT count(*) FROM pg_constraint WHERE contype = 'f'") == 1

    only_audit = _new_database(target_cluster, "audit_only")  # type: ignore[arg-type]
    run = ferry("pg", "copy", "--source", source_db.url, "--target", only_audit.url, "--schema", "audit")
    assert run.code == 0, run.stderr
    assert "foreign key trail_user_id_fkey on audit.trail not copied" in run.stderr
    assert only_audit.scalar("SELECT count(*) FROM audit.trail") == 1


def test_owner_role_owns_everything_and_grants_are_dropped(kitchen_sink: Database, target_db: Database) -> None:
    kitchen_sink.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'analyst') THEN CREATE ROLE analyst; END IF; END $$;"
        "GRANT SELECT ON customers TO analyst"
    )
    target_db.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app_owner') THEN CREATE ROLE app_owner; END IF; END $$;"
        f'GRANT CREATE ON DATABASE "{target_db.name}" TO app_owner; GRANT CREATE ON SCHEMA public TO app_owner'
    )
    copy(kitchen_sink, target_db, "--owner", "app_owner")
    owners = target_db.execute(
        "SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname IN ('public', 'sales', 'Mixed Case') AND c.relkind IN ('r', 'p', 'S', 'm', 'v')"
    )
    assert owners == [("app_owner",)]
    assert target_db.scalar("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'sales'") == "app_owner"
    assert target_db.scalar("SELECT DISTINCT pg_get_userbyid(lomowner) FROM pg_largeobject_metadata") == "app_owner"
    assert target_db.scalar("SELECT relacl FROM pg_class WHERE oid = 'customers'::regclass") is None


def test_big_tables_are_split_across_workers(source_db: Database, target_db: Database) -> None:
    source_db.execute(
        "CREATE TABLE big (id bigint PRIMARY KEY, pad text);"
        "INSERT INTO big SELECT g, md5(g::text) FROM generate_series(1, 60000) g;"
        "CREATE TABLE big_nokey (v int, pad text);"
        "INSERT INTO big_nokey SELECT g % 100, md5(g::text) FROM generate_series(1, 60000) g;"
        "INSERT INTO big_nokey SELECT 1, 'same' FROM generate_series(1, 50);"
    )
    summary = copy(source_db, target_db, "--jobs", "3", "--split-tables-larger-than", "1MB")
    parts = {t["name"]: t["parts"] for t in summary["tables"]}  # type: ignore[attr-defined]
    assert parts["public.big"] > 2 and parts["public.big_nokey"] > 2
    assert target_db.scalar("SELECT count(*) FROM big_nokey WHERE pad = 'same'") == 50
    assert_identical(source_db, target_db)


def test_integer_key_ranges_cover_every_row_once(source_db: Database) -> None:
    """Servers before 14 have no TID range scans: big tables split by primary key."""
    source_db.execute(
        "CREATE TABLE k (id int PRIMARY KEY, pad text);"
        "INSERT INTO k SELECT g * 3, repeat('y', 100) FROM generate_series(-2000, 30000) g;"
    )
    with psycopg.connect(source_db.url) as conn:
        oid = conn.execute("SELECT 'k'::regclass::oid").fetchone()[0]  # type: ignore[index]
        tables = read_tables(conn, [oid], set())
        parts = plan_parts(conn, tables, split_bytes=512 * 1024, server_major=13, jobs=2)
        assert len(parts) > 2 and all("id" in (p.predicate or "") for p in parts)
        counts = [conn.execute(f"SELECT count(*) FROM k WHERE {p.predicate}").fetchone()[0] for p in parts]  # type: ignore[index]
    assert sum(counts) == 32001 and all(c > 0 for c in counts)


def test_heroku_layout(source_db: Database, target_db: Database) -> None:
    """Extensions in heroku_ext keep working; Heroku's own _heroku schema stays behind."""
    source_db.execute(
        "CREATE SCHEMA heroku_ext; CREATE EXTENSION pgcrypto WITH SCHEMA heroku_ext;"
        f'ALTER DATABASE "{source_db.name}" SET search_path = "$user", public, heroku_ext;'
        "CREATE SCHEMA _heroku;"
        "CREATE FUNCTION _heroku.guard() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;"
        f"CREATE EVENT TRIGGER heroku_guard_{source_db.name} ON ddl_command_end EXECUTE FUNCTION _heroku.guard();"
        "CREATE TABLE tokens (id int PRIMARY KEY, token text NOT NULL DEFAULT encode(heroku_ext.gen_random_bytes(8), 'hex'));"
        "INSERT INTO tokens (id) SELECT generate_series(1, 10);"
    )
    try:
        copy(source_db, target_db)
    finally:
        source_db.execute(f"DROP EVENT TRIGGER heroku_guard_{source_db.name}")
    assert (
        target_db.scalar(
            "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE extname = 'pgcrypto'"
        )
        == "heroku_ext"
    )
    assert target_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = '_heroku'") == 0
    assert target_db.scalar("SELECT count(*) FROM pg_event_trigger") == 0
    assert "heroku_ext" in str(target_db.scalar("SHOW search_path"))
    assert target_db.scalar("SELECT length(encode(gen_random_bytes(4), 'hex'))") == 8


def test_attribute_options_the_target_does_not_know_are_left_out(source_db: Database, target_db: Database) -> None:
    """Debian's 15.20 stamps every column with ``pg_attver=…``, which stock servers refuse: an option the
    target does not know is left out with a note, and the options it knows (n_distinct) stay."""
    source_db.execute(
        "CREATE TABLE stamped (id int PRIMARY KEY, a int, b text); INSERT INTO stamped SELECT g, g, 'x' FROM "
        "generate_series(1, 50) g; ALTER TABLE stamped ALTER COLUMN b SET (n_distinct = 100)"
    )
    # Straight into the catalog, as a patched server does (the test source's user is a superuser): several
    # options in one SET with the known one among them, and a column holding the unknown one alone.
    source_db.execute(
        "UPDATE pg_catalog.pg_attribute SET attoptions = array_remove(attoptions, NULL) || CASE attname WHEN 'a' "
        "THEN '{n_distinct=-0.5,ferry_unknown_opt=15}'::text[] ELSE '{ferry_unknown_opt=15}'::text[] END "
        "WHERE attrelid = 'stamped'::regclass AND attname IN ('a', 'id')"
    )
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url)
    assert run.code == 0, run.stderr
    notes = [line for line in run.stderr.splitlines() if "ferry_unknown_opt" in line]
    assert len(notes) == 1 and "left out" in notes[0], run.stderr
    assert "public.stamped.a" in notes[0] and "public.stamped.id" in notes[0] and "2 columns" in notes[0], notes
    options = {
        str(name): [o for o in (opts or []) if not str(o).startswith("pg_attver=")]  # type: ignore[attr-defined]
        for name, opts in target_db.execute(
            "SELECT attname, attoptions FROM pg_attribute WHERE attrelid = 'stamped'::regclass AND attnum > 0"
        )
    }
    assert options == {"id": [], "a": ["n_distinct=-0.5"], "b": ["n_distinct=100"]}
    assert target_db.scalar("SELECT count(*) FROM stamped") == 50


def test_ferrys_own_records_on_a_source_stay_behind(source_db: Database, target_db: Database) -> None:
    """A database that was once a follow's target (an old database followed back into after a switch) holds
    ferry's records: they are no data of the app's, and a copy of them would confuse the next follow."""
    source_db.execute(
        "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders VALUES (1), (2);"
        "CREATE SCHEMA _ferry_follow; CREATE TABLE _ferry_follow.batches (id bigint GENERATED ALWAYS AS IDENTITY "
        "PRIMARY KEY, entries int); INSERT INTO _ferry_follow.batches (entries) VALUES (1), (2);"
        "CREATE SCHEMA _ferry; CREATE TABLE _ferry.run (id int)"
    )
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url)
    assert copied.code == 0, copied.output
    assert target_db.scalar("SELECT count(*) FROM orders") == 2
    assert target_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname IN ('_ferry_follow', '_ferry')") == 0
    verified = ferry("pg", "verify", "--source", source_db.url, "--target", target_db.url)
    assert verified.code == 0, verified.output
