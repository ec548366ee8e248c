"""What ferry leaves in a database, named in one place.

Every schema, table, function, trigger and session name ferry creates is spelled here and only
here: the copy, the follow, verify and the platform rules all leave ferry's own objects out, and
they can only agree on what those are when they read the same names.

On the source, change capture: one schema (:data:`CAPTURE_SCHEMA` unless ``--capture-schema``
says otherwise) carrying :data:`CAPTURE_MARK` as its comment and holding the log, the fence's
flag, the list of captured tables and the layout version; a statement trigger function and one
row trigger function per table; two triggers on every table. Capture's objects are recognised
by that mark, never by name (two captures, or the app's own triggers, may share names), so the
readers that find them live here too.

On the target: the copy's resume state (:data:`STATE_SCHEMA`, dropped when the copy finishes; a
shared copy's snapshot and part claims live there too),
and the follow's record (:data:`FOLLOW_SCHEMA`): where the copy began (written by the copy, read
by the follow), the batches applied, the keys they rewrote, the materialized views as copied,
the foreign keys and triggers paused for the follow.

In ``pg_stat_activity``: every session's ``application_name``, which tells a killed copy's
leftover sessions from anyone else's.
"""

from __future__ import annotations

import hashlib

from psycopg import sql

from migration.postgres.catalog import Conn

__all__ = [
    "APPLICATION_NAME",
    "CAPTURE_FENCE",
    "CAPTURE_LAYOUT",
    "CAPTURE_LOG",
    "CAPTURE_MARK",
    "CAPTURE_SCHEMA",
    "CAPTURE_TABLES",
    "COPY_APPLICATION_PREFIX",
    "FERRY_SCHEMAS",
    "FOLLOW_BATCHES",
    "FOLLOW_CHANGED",
    "FOLLOW_COPIED",
    "FOLLOW_FOREIGN_KEYS",
    "FOLLOW_SCHEMA",
    "FOLLOW_TRIGGERS",
    "FOLLOW_VIEWS",
    "NOT_OUR_SCHEMA",
    "NOT_OUR_TRIGGER",
    "ROW_FUNCTION_PREFIX",
    "STATEMENT_FUNCTION",
    "STATE_CLAIM",
    "STATE_ENTRY",
    "STATE_PART",
    "STATE_RUN",
    "STATE_SCHEMA",
    "STATE_SHARE",
    "STATE_SHARE_HELPER",
    "STATE_STEP",
    "capture_schemas",
    "in_capture",
    "our_trigger_oids",
    "row_function_name",
    "trigger_names",
]

# --- On the source: change capture -----------------------------------------------------------

#: Where capture lives on the source unless told otherwise (``--capture-schema``).
CAPTURE_SCHEMA = "ferry_capture"
#: The schema's comment: only a schema carrying it is ever taken for capture's, or dropped by ``remove``.
CAPTURE_MARK = "ferry change capture; ferry pg capture remove takes it off"
#: Capture's tables, inside its schema: which keys changed, the fence's flag (one row while fenced),
#: every table as install found it, and the version of the layout install made.
CAPTURE_LOG = "log"
CAPTURE_FENCE = "fence"
CAPTURE_TABLES = "captured"
CAPTURE_LAYOUT = "layout"
#: The statement trigger function, inside capture's schema (one for every table).
STATEMENT_FUNCTION = "log_statement"
#: Each table's row trigger function is this and the table's oid (:func:`row_function_name`).
ROW_FUNCTION_PREFIX = "log_row_"

_MARK_SQL = "'" + CAPTURE_MARK.replace("'", "''") + "'"
#: A condition on ``pg_namespace n``: not a schema of capture's (any capture, whatever its name).
NOT_OUR_SCHEMA = f"coalesce(pg_catalog.obj_description(n.oid, 'pg_namespace'), '') OPERATOR(pg_catalog.<>) {_MARK_SQL}"
#: A condition on ``pg_trigger t``: not a trigger of capture's (its function lives in no capture schema).
NOT_OUR_TRIGGER = (
    "NOT EXISTS (SELECT FROM pg_catalog.pg_proc ours WHERE ours.oid = t.tgfoid "
    f"AND pg_catalog.obj_description(ours.pronamespace, 'pg_namespace') = {_MARK_SQL})"
)


def in_capture(schema: str, table: str) -> sql.Composed:
    """One of capture's tables (:data:`CAPTURE_LOG` …) in the capture living in *schema*.

    The table's name is written bare, as it always was: it needs no quoting, and capture's function
    bodies (which name the log) must print exactly as an earlier install wrote them, or the check that
    they were not replaced since (``prosrc`` compared) would fail on every existing install."""
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.SQL(table))


def row_function_name(rel: int) -> str:
    """The row trigger function of the table *rel* (an oid: a table renamed keeps its function)."""
    return f"{ROW_FUNCTION_PREFIX}{int(rel)}"


def trigger_names(schema: str) -> tuple[str, str]:
    """The row and statement triggers' names for a capture living in *schema*: two captures (two
    schemas) may be on one table at once. ``ferry_capture`` gives ``ferry_capture_row``; a schema name
    too long to prefix one (63 bytes at most) gives a hash of it."""
    if len(f"{schema}_statement".encode()) <= 63:
        return f"{schema}_row", f"{schema}_statement"
    short = "ferry_" + hashlib.sha1(schema.encode()).hexdigest()[:12]
    return f"{short}_row", f"{short}_statement"


def capture_schemas(conn: Conn) -> list[str]:
    """Every schema of capture's on this database, whatever it is called."""
    rows = conn.execute(
        "SELECT nspname FROM pg_catalog.pg_namespace WHERE pg_catalog.obj_description(oid, 'pg_namespace') = %s",
        (CAPTURE_MARK,),
    )
    return sorted(str(r[0]) for r in rows)


def our_trigger_oids(conn: Conn) -> set[int]:
    """The oids of every capture's triggers (a copy leaves them on the source)."""
    rows = conn.execute(
        "SELECT t.oid FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid "
        "WHERE pg_catalog.obj_description(p.pronamespace, 'pg_namespace') = %s",
        (CAPTURE_MARK,),
    )
    return {int(r[0]) for r in rows}


# --- On the target: the copy's resume state and the follow's record --------------------------

#: The copy's resume state; dropped when the copy finishes.
STATE_SCHEMA = "_ferry"
#: The run (source, snapshot, plan), the parts loaded, the steps done, the schema entries applied.
STATE_RUN = f"{STATE_SCHEMA}.run"
STATE_PART = f"{STATE_SCHEMA}.part"
STATE_STEP = f"{STATE_SCHEMA}.step"
STATE_ENTRY = f"{STATE_SCHEMA}.entry"
#: A shared copy (``CopyOptions.shared``): the snapshot its helpers import, and one claim row per part.
STATE_SHARE = f"{STATE_SCHEMA}.share"
STATE_CLAIM = f"{STATE_SCHEMA}.part_claim"
#: The helpers that joined a shared copy (the leader waits for those it expects before it claims).
STATE_SHARE_HELPER = f"{STATE_SCHEMA}.share_helper"

#: The follow's record; dropped once nothing in it is needed (:func:`~migration.postgres.capture.forget_follow`).
FOLLOW_SCHEMA = "_ferry_follow"
#: Where the copy began: its first snapshot and the source's tables' shape (the copy writes it, the follow reads it).
FOLLOW_COPIED = f"{FOLLOW_SCHEMA}.copied"
#: The source's materialized views as the target's copy of each was made.
FOLLOW_VIEWS = f"{FOLLOW_SCHEMA}.views"
#: Every batch applied, with the source transaction that read it (a witness tells ferry's own from others').
FOLLOW_BATCHES = f"{FOLLOW_SCHEMA}.batches"
#: Every key a batch rewrote, in the order applied (``key`` NULL: the whole table).
FOLLOW_CHANGED = f"{FOLLOW_SCHEMA}.changed"
#: Foreign keys taken off for the follow (``state``: ``dropped``, then ``not valid``), and triggers disabled.
FOLLOW_FOREIGN_KEYS = f"{FOLLOW_SCHEMA}.foreign_keys"
FOLLOW_TRIGGERS = f"{FOLLOW_SCHEMA}.triggers"

#: ferry's schemas of fixed name, never the app's: left out of what is copied, followed, verified.
FERRY_SCHEMAS = (STATE_SCHEMA, FOLLOW_SCHEMA)

# --- In pg_stat_activity ---------------------------------------------------------------------

#: Every session ferry opens (the server's logs and ``pg_stat_activity`` say whose it is).
APPLICATION_NAME = "ferry"
#: A copy's target sessions are ``ferry copy <pid>``: a killed copy's leftovers are found by it.
COPY_APPLICATION_PREFIX = "ferry copy "
