"""The target database before a copy: is it empty, and cleaning it when asked to."""

from __future__ import annotations

import psycopg

from migration.postgres.catalog import Conn

__all__ = ["clean_target", "describe_contents"]

_CONTENTS = r"""
SELECT 'schema ' || quote_ident(n.nspname) FROM pg_namespace n
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
UNION ALL
SELECT 'relation ' || format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'type ' || format_type(t.oid, NULL) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
   AND t.typtype IN ('e', 'd', 'c', 'r', 'm') AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
UNION ALL
SELECT 'large object ' || oid FROM pg_largeobject_metadata
UNION ALL
SELECT 'publication ' || quote_ident(pubname) FROM pg_publication
UNION ALL
SELECT 'event trigger ' || quote_ident(evtname) FROM pg_event_trigger e
 WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_event_trigger'::regclass AND d.objid = e.oid AND d.deptype = 'e')
UNION ALL
SELECT 'foreign server ' || quote_ident(srvname) FROM pg_foreign_server s
 WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_foreign_server'::regclass AND d.objid = s.oid AND d.deptype = 'e')
UNION ALL
SELECT 'foreign data wrapper ' || quote_ident(fdwname) FROM pg_foreign_data_wrapper w
 WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_foreign_data_wrapper'::regclass AND d.objid = w.oid AND d.deptype = 'e')
"""


_NOT_EXTENSION = "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass AND d.objid = {alias}.oid AND d.deptype = 'e')"
_OUTSIDE_SCHEMAS = (
    ("PUBLICATION", "SELECT pubname FROM pg_publication"),
    (
        "EVENT TRIGGER",
        "SELECT evtname FROM pg_event_trigger e WHERE " + _NOT_EXTENSION.format(catalog="pg_event_trigger", alias="e"),
    ),
    (
        "SERVER",
        "SELECT srvname FROM pg_foreign_server s WHERE "
        + _NOT_EXTENSION.format(catalog="pg_foreign_server", alias="s"),
    ),
    (
        "FOREIGN DATA WRAPPER",
        "SELECT fdwname FROM pg_foreign_data_wrapper w WHERE "
        + _NOT_EXTENSION.format(catalog="pg_foreign_data_wrapper", alias="w"),
    ),
)


def describe_contents(conn: Conn, limit: int = 5) -> list[str]:
    """Up to *limit* user objects found in the database (empty list when empty)."""
    rows = conn.execute(f"SELECT * FROM ({_CONTENTS}) o LIMIT {int(limit)}").fetchall()
    return [str(r[0]) for r in rows]


def clean_target(conn: Conn) -> None:
    """Drop every user schema and object, then recreate ``public`` as it was.

    Objects that live outside any schema go too: publications, event triggers, foreign
    servers and data wrappers (not those of an extension), large objects. Only called
    with ``--clean``: the user asked for the target to be emptied.
    """
    with conn.transaction():
        for kind, query in _OUTSIDE_SCHEMAS:
            for (name,) in conn.execute(query).fetchall():
                conn.execute(f"DROP {kind} IF EXISTS {psycopg.sql.Identifier(str(name)).as_string()} CASCADE")
        schemas = conn.execute(
            "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace "
            r"WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\_%'"
        ).fetchall()
        for name, owner in schemas:
            ident = psycopg.sql.Identifier(str(name)).as_string()
            conn.execute(f"DROP SCHEMA {ident} CASCADE")
            if name == "public":
                conn.execute(f"CREATE SCHEMA public AUTHORIZATION {psycopg.sql.Identifier(str(owner)).as_string()}")
                conn.execute("GRANT USAGE ON SCHEMA public TO PUBLIC")
        conn.execute("SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata")
