"""A copy of chosen tables brings what they need, or says in one line what is missing."""

from __future__ import annotations

import psycopg

from tests.conftest import Database
from tests.helpers import assert_one_line_error, ferry

NEEDY = """
CREATE SCHEMA kinds;
CREATE TYPE kinds.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN kinds.positive AS integer CHECK (VALUE > 0);
CREATE FUNCTION kinds.shout(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT upper(t) $$;
CREATE SEQUENCE shared_numbers START 500;
SELECT nextval('shared_numbers');
CREATE SCHEMA shop;
CREATE TABLE shop.tickets (
    id serial PRIMARY KEY,
    number bigint NOT NULL DEFAULT nextval('shared_numbers'),
    mood kinds.mood NOT NULL DEFAULT 'ok',
    seats kinds.positive,
    title text CHECK (kinds.shout(title) <> 'FORBIDDEN')
);
INSERT INTO shop.tickets (mood, seats, title) SELECT 'happy', g, 't' || g FROM generate_series(1, 50) g;
CREATE TABLE shop.unrelated (id int);
"""


def _copy(source: Database, target: Database, *filters: str) -> tuple[int, str]:
    run = ferry("pg", "copy", "--source", source.url, "--target", target.url, *filters)
    return run.code, run.output


def test_table_filter_brings_sequences_types_functions_and_schemas(source_db: Database, target_db: Database) -> None:
    source_db.execute(NEEDY)
    code, output = _copy(source_db, target_db, "-t", "shop.tickets")
    assert code == 0, output
    assert target_db.scalar("SELECT count(*) FROM shop.tickets") == 50
    assert target_db.scalar("SELECT to_regclass('shop.unrelated')") is None
    # Sequences arrive at the source's position: the next ids do not collide.
    assert target_db.scalar("SELECT nextval('shop.tickets_id_seq')") == 51
    assert target_db.scalar("SELECT nextval('shared_numbers')") == 551
    # The owned sequence still belongs to its column (dropping the table would drop it).
    assert target_db.scalar("SELECT pg_get_serial_sequence('shop.tickets', 'id')") == "shop.tickets_id_seq"
    with psycopg.connect(target_db.url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO shop.tickets (mood, seats, title) VALUES ('sad', 3, 'new') RETURNING number")
        assert cur.fetchone() == (552,)


def test_schema_filter_brings_types_from_other_schemas(source_db: Database, target_db: Database) -> None:
    source_db.execute(NEEDY)
    code, output = _copy(source_db, target_db, "-n", "shop")
    assert code == 0, output
    assert target_db.scalar("SELECT count(*) FROM shop.tickets") == 50
    assert target_db.scalar("SELECT count(*) FROM pg_type WHERE typname = 'mood'") == 1


def test_excluding_a_view_another_one_reads_is_one_line(kitchen_sink: Database, target_db: Database) -> None:
    run = ferry(
        "pg", "copy", "--source", kitchen_sink.url, "--target", target_db.url, "-T", "customer_totals"
    )  # fmt: skip
    assert_one_line_error(run, "source:", "top_customers reads materialized view public.customer_totals")
    assert target_db.scalar("SELECT count(*) FROM pg_class WHERE relname = 'customers'") == 0
    # Leaving both out works.
    code, output = _copy(kitchen_sink, target_db, "-T", "customer_totals", "-T", "top_customers")
    assert code == 0, output
    assert target_db.scalar("SELECT count(*) FROM customers") == 3000
