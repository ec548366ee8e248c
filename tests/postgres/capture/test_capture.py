"""``ferry pg capture install|status|remove`` on real clusters: every role's changes logged by key,
installed without queueing the app behind a lock, and removed without a trace."""

from __future__ import annotations

import threading
import time

import psycopg

from tests.conftest import Database
from tests.helpers import assert_one_line_error, ferry

# Everything a user could have that capture must leave as it found it.
FINGERPRINT = """
SELECT (SELECT string_agg(nspname || ':' || coalesce(obj_description(oid, 'pg_namespace'), ''), ',' ORDER BY nspname)
          FROM pg_namespace),
       (SELECT string_agg(c.oid::regclass::text || ':' || c.relkind::text, ',' ORDER BY c.oid::regclass::text)
          FROM pg_class c
         WHERE c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
           AND c.relname NOT LIKE 'pg_toast%'),
       (SELECT string_agg(tgrelid::regclass::text || '.' || tgname, ',' ORDER BY tgrelid::regclass::text, tgname)
          FROM pg_trigger),
       (SELECT string_agg(p.oid::regprocedure::text, ',' ORDER BY p.oid::regprocedure::text) FROM pg_proc p
         WHERE p.pronamespace <> 'pg_catalog'::regnamespace AND p.pronamespace <> 'information_schema'::regnamespace),
       (SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles)
"""


def _log(db: Database) -> list[tuple[object, ...]]:
    return db.execute("SELECT rel::regclass::text, op::text, old_key, new_key FROM ferry_capture.log ORDER BY id")


def test_install_logs_every_kind_of_change_by_key_and_remove_leaves_no_trace(kitchen_sink: Database) -> None:
    before = kitchen_sink.execute(FINGERPRINT)
    listed = ferry("pg", "capture", "install", "--source", kitchen_sink.url, "--dry-run", "--json")
    assert listed.code == 0, listed.output
    assert kitchen_sink.execute(FINGERPRINT) == before  # a dry run changes nothing
    plan = listed.json
    assert {"table": "sales.orders", "key": ["id"]} in plan["captured"]
    # No key to re-read a row by: no primary key, no columns, or a child table that inherits none.
    assert [t["table"] for t in plan["not_capturable"]] == ["public.events_nopk", "public.no_columns", "public.trucks"]

    run = ferry("pg", "capture", "install", "--source", kitchen_sink.url, "--json")
    assert run.code == 0, run.output
    again = ferry("pg", "capture", "install", "--source", kitchen_sink.url)
    assert_one_line_error(again, "source:", "installed already")

    kitchen_sink.execute("INSERT INTO sales.orders (customer_id, amount) VALUES (1, 9.5)")
    new_id = kitchen_sink.scalar("SELECT max(id) FROM sales.orders")
    audit_id = kitchen_sink.scalar("SELECT max(id) FROM audit_log")  # the source's own trigger wrote it
    kitchen_sink.execute("UPDATE sales.orders SET amount = 10 WHERE id = 7")
    kitchen_sink.execute("UPDATE sales.orders SET id = 999999 WHERE id = 8")  # a key update: old and new key
    kitchen_sink.execute("DELETE FROM sales.orders WHERE id = 9")
    kitchen_sink.execute("TRUNCATE cache_entries")
    # Another role, with rights on the table only, writes too: its change is logged, not refused.
    kitchen_sink.execute("CREATE ROLE capture_writer LOGIN PASSWORD 'cw-pw'")
    kitchen_sink.execute("GRANT USAGE ON SCHEMA sales TO capture_writer")
    kitchen_sink.execute("GRANT UPDATE, SELECT ON sales.orders TO capture_writer")
    other = kitchen_sink.cluster.url(kitchen_sink.name, user="capture_writer", password="cw-pw")
    with psycopg.connect(other, autocommit=True) as conn:
        conn.execute("UPDATE sales.orders SET note = 'by another role' WHERE id = 11")
    assert _log(kitchen_sink) == [
        ("sales.orders", "I", None, {"id": new_id}),
        ("audit_log", "I", None, {"id": audit_id}),
        ("sales.orders", "U", None, {"id": 7}),
        ("sales.orders", "U", {"id": 8}, {"id": 999999}),
        ("sales.orders", "D", {"id": 9}, None),
        ("cache_entries", "T", None, None),
        ("sales.orders", "U", None, {"id": 11}),
    ]
    status = ferry("pg", "capture", "status", "--source", kitchen_sink.url, "--json")
    assert status.code == 0 and status.json["log_entries"] == 7 and status.json["log_bytes"] > 0
    assert status.json["uncaptured"] == ["public.events_nopk", "public.no_columns", "public.trucks"]
    assert "sales.orders" in status.json["captured"]

    kitchen_sink.execute("DROP OWNED BY capture_writer; DROP ROLE capture_writer")
    removed = ferry("pg", "capture", "remove", "--source", kitchen_sink.url)
    assert removed.code == 0, removed.output
    assert kitchen_sink.execute(FINGERPRINT) == before
    assert ferry("pg", "capture", "remove", "--source", kitchen_sink.url).code == 0  # nothing left: still fine


def test_a_locked_table_is_named_and_nothing_stays_installed(source_db: Database) -> None:
    source_db.execute("CREATE TABLE calm (id int PRIMARY KEY); CREATE TABLE busy (id int PRIMARY KEY)")
    before = source_db.execute(FINGERPRINT)
    holder = psycopg.connect(source_db.url)
    holder.execute("LOCK TABLE busy IN ROW EXCLUSIVE MODE")  # an open write transaction: CREATE TRIGGER waits
    app_waited: list[float] = []

    def app_writes() -> None:
        # The app keeps writing to the other table while install retries: never queued for long.
        with psycopg.connect(source_db.url, autocommit=True) as conn:
            for i in range(20):
                started = time.monotonic()
                conn.execute("INSERT INTO calm VALUES (%s) ON CONFLICT DO NOTHING", (i,))
                app_waited.append(time.monotonic() - started)
                time.sleep(0.05)

    writer = threading.Thread(target=app_writes)
    writer.start()
    try:
        run = ferry("pg", "capture", "install", "--source", source_db.url, "--lock-timeout", "100")
    finally:
        writer.join()
        holder.close()
    assert_one_line_error(run, "source:", "could not lock public.busy")
    assert source_db.execute(FINGERPRINT) == before
    assert max(app_waited) < 1.0


def test_a_schema_of_that_name_that_is_not_ours_is_never_dropped(source_db: Database) -> None:
    source_db.execute(
        "CREATE SCHEMA ferry_capture; CREATE TABLE ferry_capture.precious (v int); "
        "INSERT INTO ferry_capture.precious VALUES (1)"
    )
    run = ferry("pg", "capture", "install", "--source", source_db.url)
    assert_one_line_error(run, "source:", "is not ferry's", "--capture-schema")
    removed = ferry("pg", "capture", "remove", "--source", source_db.url)
    assert_one_line_error(removed, "source:", "not ferry's change capture")
    assert source_db.scalar("SELECT v FROM ferry_capture.precious") == 1


def test_another_role_s_search_path_cannot_run_its_own_code_inside_ours(source_db: Database) -> None:
    """The trigger functions run as their owner (SECURITY DEFINER) without a SET search_path of
    their own: every name in them is qualified, so functions, operators and types a writer puts
    first on its search_path are never called with the owner's rights."""
    source_db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, v text); CREATE ROLE capture_intruder LOGIN PASSWORD 'ci-pw';"
        "GRANT INSERT, UPDATE, DELETE, SELECT ON items TO capture_intruder; CREATE SCHEMA evil;"
        "GRANT ALL ON SCHEMA evil TO capture_intruder; CREATE TABLE evil.calls (who text);"
        "GRANT ALL ON evil.calls TO capture_intruder;"
        "CREATE FUNCTION evil.left(text, int) RETURNS text LANGUAGE sql AS "
        "$$ INSERT INTO evil.calls VALUES (current_user) RETURNING 'X' $$;"
        "CREATE FUNCTION evil.jsonb_build_object(text, int) RETURNS jsonb LANGUAGE sql AS "
        "$$ INSERT INTO evil.calls VALUES (current_user) RETURNING '{}'::jsonb $$;"
        "CREATE FUNCTION evil.text_eq(text, text) RETURNS bool LANGUAGE plpgsql AS "
        "$$ BEGIN INSERT INTO evil.calls VALUES (current_user); RETURN true; END $$;"
        "CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.text_eq);"
        "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA evil TO capture_intruder;"
    )
    try:
        assert ferry("pg", "capture", "install", "--source", source_db.url).code == 0
        intruder = source_db.cluster.url(source_db.name, user="capture_intruder", password="ci-pw")
        with psycopg.connect(intruder, autocommit=True) as conn:
            conn.execute("SET search_path = evil, pg_catalog, public")
            conn.execute("INSERT INTO public.items VALUES (1, 'a')")
            conn.execute("UPDATE public.items SET id = 2 WHERE id = 1")
            conn.execute("DELETE FROM public.items")
        assert source_db.scalar("SELECT count(*) FROM evil.calls") == 0
        logged = source_db.execute("SELECT op::text, old_key, new_key FROM ferry_capture.log ORDER BY id")
        assert logged == [("I", None, {"id": 1}), ("U", {"id": 1}, {"id": 2}), ("D", {"id": 2}, None)]
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)
        source_db.execute("DROP SCHEMA evil CASCADE; DROP OWNED BY capture_intruder; DROP ROLE capture_intruder")


def test_every_captured_table_s_trigger_runs(kitchen_sink: Database) -> None:
    """Each table's function is written for its key and only runs on the table's next write: a
    write to every captured table of the kitchen sink (quoted names, composite keys, partitions,
    unlogged, identity) must go through and be logged, or capture would break the app's writes."""
    assert ferry("pg", "capture", "install", "--source", kitchen_sink.url).code == 0
    try:
        captured = kitchen_sink.execute(
            "SELECT name, key_columns FROM ferry_capture.captured WHERE key_columns <> '{}' ORDER BY name"
        )
        assert len(captured) >= 14
        written = 0
        for name, _key in captured:
            with psycopg.connect(kitchen_sink.url, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
                    "AND NOT attisdropped AND attgenerated = '' AND attidentity <> 'a' ORDER BY attnum LIMIT 1",
                    (name,),
                ).fetchone()
                assert row is not None, name
                # A no-op update of one row: both the old and the new key are built.
                cur = conn.execute(
                    f"UPDATE ONLY {name} SET {row[0]} = {row[0]} WHERE ctid = (SELECT ctid FROM ONLY {name} LIMIT 1)"
                )
                written += cur.rowcount
        logged = kitchen_sink.execute("SELECT DISTINCT rel::regclass::text FROM ferry_capture.log WHERE op = 'U'")
        assert written > 10 and len(logged) == written, sorted(str(r[0]) for r in logged)
    finally:
        ferry("pg", "capture", "remove", "--source", kitchen_sink.url)
