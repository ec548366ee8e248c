"""The filters' dependency closure, on a real catalog: what a chosen table needs comes with it."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from migration.errors import UsageError
from migration.postgres.copy.filters import PG_NAMESPACE, PG_PROC, PG_TYPE, needs_of
from migration.postgres.copy.schema import PG_CLASS, SchemaDump, TocEntry
from tests.conftest import Database

SCHEMA = """
CREATE SCHEMA shop;
CREATE DOMAIN shop.price AS numeric CHECK (VALUE >= 0);
CREATE FUNCTION shop.valid_sku(text) RETURNS boolean IMMUTABLE LANGUAGE sql AS $$ SELECT $1 ~ '^[A-Z]+$' $$;
CREATE SEQUENCE shop.shared_numbers;
CREATE TABLE shop.items (id serial PRIMARY KEY, sku text CHECK (shop.valid_sku(sku)), cost shop.price,
                         number bigint DEFAULT nextval('shop.shared_numbers'));
CREATE TABLE shop.other (id serial PRIMARY KEY);
CREATE VIEW shop.item_view AS SELECT i.id, o.id AS other_id FROM shop.items i, shop.other o;
"""


def _dump_of(conn: psycopg.Connection, *names: str) -> SchemaDump:
    entries = []
    for i, name in enumerate(names, 1):
        oid = int(conn.execute("SELECT %s::regclass::oid", (name,)).fetchone()[0])
        entries.append(TocEntry(f"{i}; {PG_CLASS} {oid} TABLE", i, PG_CLASS, oid, "TABLE", name))
    return SchemaDump(Path("unused"), entries, [])


def _oid(conn: psycopg.Connection, query: str) -> int:
    return int(conn.execute(query).fetchone()[0])


def test_a_chosen_table_brings_its_sequences_types_functions_and_schema(source_db: Database) -> None:
    source_db.execute(SCHEMA)
    with psycopg.connect(source_db.url) as conn:
        needs = needs_of(conn, _dump_of(conn, "shop.items"))
        own_seq = _oid(conn, "SELECT 'shop.items_id_seq'::regclass::oid")
        shared = _oid(conn, "SELECT 'shop.shared_numbers'::regclass::oid")
        others = _oid(conn, "SELECT 'shop.other_id_seq'::regclass::oid")
        expected = {
            (PG_CLASS, own_seq),
            (PG_CLASS, shared),
            (PG_TYPE, _oid(conn, "SELECT 'shop.price'::regtype::oid")),
            (PG_PROC, _oid(conn, "SELECT 'shop.valid_sku(text)'::regprocedure::oid")),
            (PG_NAMESPACE, _oid(conn, "SELECT 'shop'::regnamespace::oid")),
        }
    assert expected <= needs.objects
    assert (PG_CLASS, others) not in needs.objects  # another table's sequence stays behind
    assert needs.owned_sequences == {own_seq}  # OWNED BY the chosen table; the shared one is not
    assert needs.sequence_oids == sorted([own_seq, shared])


def test_a_chosen_view_reading_a_table_left_out_is_one_line(source_db: Database) -> None:
    source_db.execute(SCHEMA)
    with psycopg.connect(source_db.url) as conn:
        with pytest.raises(UsageError, match=r"shop\.item_view reads table shop\.other, which the table filters"):
            needs_of(conn, _dump_of(conn, "shop.items", "shop.item_view"))
        # With both of its tables chosen, the view needs nothing more than they do.
        assert needs_of(conn, _dump_of(conn, "shop.items", "shop.other", "shop.item_view")).objects
