"""Where a target's copy began, so a follow can tell whether capture was in place before it.

The one record the copy writes and the follow reads: it sits below both (a copy imports nothing
of capture's), and takes its tables' names from :mod:`migration.postgres.footprint`.

The follow brings every change *in the log*; a change made after the copy's snapshot but before
a table's capture trigger went in is in neither, and is lost. So a copy whose source carries
capture leaves, on the target, the snapshot it (first) read from; the follow checks that every
table's triggers were committed before that snapshot (the installing transaction of each table
is recorded on the source). A copy that began before capture was installed — or while an install
was still going — is refused, with one line saying to copy again.

The copy also leaves the shape of every table as its snapshot saw it (:func:`source_shape`): a
follow started later compares the source with it first, so DDL made while no follower ran (between
the copy and the follow, or while a killed follower was down) stops the follow as DDL under it does.
"""

from __future__ import annotations

import json

import psycopg
from psycopg import sql

from migration.errors import PreconditionError
from migration.postgres.catalog import Conn
from migration.postgres.footprint import (
    CAPTURE_TABLES,
    FOLLOW_COPIED,
    FOLLOW_SCHEMA,
    FOLLOW_VIEWS,
    STATE_SCHEMA,
    capture_schemas,
    in_capture,
)

__all__ = [
    "copied_shape",
    "copied_views",
    "record_copy_origin",
    "record_views",
    "require_copied_after_install",
    "source_shape",
]

_ORIGIN = FOLLOW_COPIED
#: The source's materialized views as the target's copy of each was made (``relfilenode``, populated):
#: one refreshed on the source since has another relfilenode, and the follow refreshes the target's.
_VIEWS = FOLLOW_VIEWS

_SHAPE = (
    r"""
SELECT c.oid::int, format('%%I.%%I', n.nspname, c.relname),
       string_agg(a.attname || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
                  || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                  || CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation
                          THEN ' collate ' || a.attcollation::regcollation::text ELSE '' END
                  || coalesce(' = ' || pg_catalog.pg_get_expr(d.adbin, d.adrelid), '')
                  || ' #' || a.attnum, ', ' ORDER BY a.attnum)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE c.relkind IN ('r', 'p', 'S') AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', '_heroku', """
    # The follow's own record on a target followed back (the forward follow's, dropped once it ends) is no table.
    + f"'{STATE_SCHEMA}', '{FOLLOW_SCHEMA}')"
    + r"""
   AND n.nspname <> ALL(%(capture)s::text[])
   AND n.nspname NOT LIKE 'pg\_%%'
 GROUP BY 1, 2
"""
)


#: ``{table oid: (name, its columns as text)}``: what a follow compares to notice DDL.
Shape = dict[int, tuple[str, str]]


def source_shape(conn: Conn) -> Shape:
    """Every table's (and sequence's) name and columns on the source, by oid (capture's own left out)."""
    capture = capture_schemas(conn)
    # Type names print schema-qualified or not by search_path: read under an empty one, in whichever
    # session (the copy's snapshot, a follower's), so that the same table prints the same.
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        with conn.transaction():
            conn.execute("SET LOCAL search_path = ''")
            rows = conn.execute(_SHAPE, {"capture": capture}).fetchall()
    else:
        row = conn.execute("SELECT pg_catalog.current_setting('search_path')").fetchone()
        conn.execute("SELECT pg_catalog.set_config('search_path', '', true)")
        rows = conn.execute(_SHAPE, {"capture": capture}).fetchall()
        conn.execute("SELECT pg_catalog.set_config('search_path', %s, true)", (str(row[0]) if row else "",))
    return {int(r[0]): (str(r[1]), str(r[2] or "")) for r in rows}


def record_copy_origin(target: Conn, txid_snapshot: str, views: dict[str, tuple[int, bool]], shape: Shape) -> None:
    """In the last target transaction of a copy whose source carries capture (as its snapshot saw it):
    the first snapshot it read from, the source's tables' shape and its materialized views as that
    snapshot saw them."""
    target.execute(
        f"CREATE SCHEMA IF NOT EXISTS {FOLLOW_SCHEMA}; "
        f"CREATE TABLE IF NOT EXISTS {_ORIGIN} (id int PRIMARY KEY DEFAULT 1 CHECK (id = 1), snapshot text NOT NULL); "
        f"ALTER TABLE {_ORIGIN} ADD COLUMN IF NOT EXISTS shape jsonb"
    )
    target.execute(
        f"INSERT INTO {_ORIGIN} (snapshot, shape) VALUES (%s, %s::jsonb) "
        "ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot, shape = excluded.shape",
        (txid_snapshot, json.dumps({str(oid): list(entry) for oid, entry in shape.items()})),
    )
    target.execute(f"DROP TABLE IF EXISTS {_VIEWS}")
    record_views(target, views)


def copied_shape(target: Conn) -> Shape | None:
    """The source's shape as the target's copy saw it (``None``: a copy that recorded none)."""
    row = target.execute(
        "SELECT pg_catalog.to_regclass(%s) IS NOT NULL AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute "
        "WHERE attrelid = pg_catalog.to_regclass(%s) AND attname = 'shape' AND NOT attisdropped)",
        (_ORIGIN, _ORIGIN),
    ).fetchone()
    if not (row and row[0]):
        return None
    found = target.execute(f"SELECT shape FROM {_ORIGIN}").fetchone()
    if found is None or found[0] is None:
        return None
    return {int(oid): (str(entry[0]), str(entry[1])) for oid, entry in found[0].items()}


def record_views(target: Conn, views: dict[str, tuple[int, bool]]) -> None:
    """The source's views as the target's now stand (after the copy, or after the follow refreshed them)."""
    target.execute(
        f"CREATE TABLE IF NOT EXISTS {_VIEWS} (name text PRIMARY KEY, storage bigint NOT NULL, populated boolean NOT NULL)"
    )
    for name, (storage, populated) in views.items():
        target.execute(
            f"INSERT INTO {_VIEWS} VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE "
            "SET storage = excluded.storage, populated = excluded.populated",
            (name, storage, populated),
        )


def copied_views(target: Conn) -> dict[str, tuple[int, bool]]:
    """What :func:`record_views` last recorded (nothing, on a target copied before it did)."""
    row = target.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (_VIEWS,)).fetchone()
    if not (row and row[0]):
        return {}
    return {
        str(r[0]): (int(r[1]), bool(r[2])) for r in target.execute(f"SELECT name, storage, populated FROM {_VIEWS}")
    }


def require_copied_after_install(source: Conn, target: Conn, schema: str) -> None:
    """:raises PreconditionError: the target's copy began before capture covered every table."""
    row = target.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (_ORIGIN,)).fetchone()
    snapshot = None
    if row and row[0]:
        found = target.execute(f"SELECT snapshot FROM {_ORIGIN}").fetchone()
        snapshot = str(found[0]) if found else None
    if snapshot is None:
        raise PreconditionError(
            "the target was not copied by ferry from a source carrying change capture (capture was installed "
            "after the copy began?): changes made in between are in no log; copy again, then follow",
            side="target",
        )
    late = [
        str(r[0])
        for r in source.execute(
            sql.SQL(
                "SELECT name FROM {} WHERE NOT pg_catalog.txid_visible_in_snapshot(xid, %s::txid_snapshot) "
                "ORDER BY name"
            ).format(in_capture(schema, CAPTURE_TABLES)),
            (snapshot,),
        )
    ]
    if late:
        raise PreconditionError(
            f"change capture on {late[0]} went in after the target's copy began ({len(late)} tables): changes made "
            "in between are in no log; copy again, then follow",
            side="source",
        )
