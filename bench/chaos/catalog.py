"""The source's catalog: after ``ferry pg capture remove`` it must hold nothing of ferry's."""

from __future__ import annotations

import psycopg

_CATALOG = """
SELECT 'schema ' || nspname || ' ' || coalesce(obj_description(oid, 'pg_namespace'), '') FROM pg_namespace
 WHERE nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
UNION ALL
SELECT 'relation ' || format('%I.%I', n.nspname, c.relname) || ' ' || c.relkind::text || ' ' || coalesce(c.relacl::text, '')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relpersistence <> 't'
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text || ' ' || md5(coalesce(p.prosrc, '')) || ' ' || coalesce(p.proacl::text, '')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'trigger ' || t.tgrelid::regclass::text || ' ' || t.tgname || ' ' || t.tgenabled::text FROM pg_trigger t
UNION ALL SELECT 'event trigger ' || evtname FROM pg_event_trigger
UNION ALL SELECT 'extension ' || extname || ' ' || extversion FROM pg_extension
UNION ALL SELECT 'policy ' || polrelid::regclass::text || ' ' || polname FROM pg_policy
UNION ALL SELECT 'publication ' || pubname FROM pg_publication
UNION ALL SELECT 'type ' || t.oid::regtype::text FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
UNION ALL SELECT 'setting ' || coalesce(setrole::regrole::text, '-') || ' ' || array_to_string(setconfig, ',')
  FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
UNION ALL SELECT 'role ' || rolname FROM pg_roles
UNION ALL SELECT 'replication slot ' || slot_name FROM pg_replication_slots
"""


def catalog(url: str) -> set[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        return {str(r[0]) for r in conn.execute(_CATALOG).fetchall()}


def leftovers(before: set[str], url: str) -> list[str]:
    """What the catalog holds now and did not before ``install`` (or lost), and any code that names ferry."""
    now = catalog(url)
    out = [f"added: {x}" for x in sorted(now - before)] + [f"gone: {x}" for x in sorted(before - now)]
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.prosrc ILIKE '%ferry%' OR p.proname ILIKE '%ferry%'"
        ).fetchall()
    return out + [f"function naming ferry: {r[0]}" for r in rows]
