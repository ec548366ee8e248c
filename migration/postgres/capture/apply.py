"""Applying the change log to the target, one batch per target transaction.

A batch is the log entries visible in one source snapshot (oldest first, up to a limit),
never "entries above the highest id applied": an entry that commits late with a lower id
is simply still in the log for the next batch. For each table of the batch, the rows of
the keys it names are read again from the same snapshot, and on the target the rows of
those keys are deleted and the current ones inserted (a TRUNCATE entry copies the whole
table again). Rows on the target that collide with incoming ones on another unique index or
exclusion constraint (two rows that swapped values; see :mod:`.collisions`) are taken out too
and re-read by their own key. The batch's changes and a marker commit in one target
transaction; only then are the entries cleared on the source, in the very source transaction
that read them, so a crash re-applies a batch (harmless) and never skips one. The target's
record of the batch names that source transaction, so a witness can tell ferry's own
transactions on the source from anyone else's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from migration.crashpoints import crashpoint
from migration.errors import SourceChangedError
from migration.postgres.capture.collisions import Conflict, conflicts_of, take_out_colliders
from migration.postgres.capture.sql import KEY_SETTINGS
from migration.postgres.capture.tables import capture_tables
from migration.postgres.catalog import Conn
from migration.postgres.connection import pg_errors
from migration.postgres.footprint import (
    CAPTURE_LOG,
    CAPTURE_MARK,
    CAPTURE_SCHEMA,
    CAPTURE_TABLES,
    FOLLOW_BATCHES,
    FOLLOW_CHANGED,
    FOLLOW_SCHEMA,
    in_capture,
)

__all__ = [
    "ApplyResult",
    "apply_batch",
    "copy_keyless_tables",
    "key_rows",
    "key_types",
    "prepare_target",
    "record_changes",
    "sync_sequences",
]


@dataclass(frozen=True)
class ApplyResult:
    """One batch: entries applied (and cleared on the source), rows written, tables copied whole."""

    entries: int
    rows: int
    truncated: int


@dataclass(frozen=True)
class _Table:
    name: str
    key: tuple[str, ...]  # column names, as they are (not quoted)
    key_types: tuple[str, ...]
    columns: tuple[str, ...]  # what INSERT may write (generated columns left out)
    #: other unique indexes and exclusion constraints, whose values may collide
    conflicts: tuple[Conflict, ...]
    identity_always: bool


_TABLE_INFO = """
SELECT
  (SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = %(rel)s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
  EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a WHERE a.attrelid = %(rel)s AND a.attidentity = 'a')
"""


def _table(source: Conn, schema: str, rel: int) -> _Table:
    row = source.execute(
        sql.SQL("SELECT name, key_columns FROM {} WHERE rel = %s").format(in_capture(schema, CAPTURE_TABLES)), (rel,)
    ).fetchone()
    if row is None:
        raise LookupError(rel)
    key = tuple(str(c) for c in row[1])
    if not key:
        raise LookupError(rel)  # a table without a key: copied whole inside the freeze, never applied
    info = source.execute(_TABLE_INFO, {"rel": rel}).fetchone()
    assert info is not None
    types = key_types(source, str(row[0]), list(key))
    # Rows of two keys may trade values of another unique index, or ranges an exclusion constraint keeps apart.
    return _Table(str(row[0]), key, types, tuple(info[0]), conflicts_of(source, rel, key), bool(info[1]))


_KEY_TYPES = """
SELECT pg_catalog.format('%%I.%%I', n.nspname, t.typname)
  FROM unnest(%(columns)s::text[]) WITH ORDINALITY AS k(name, ord)
  JOIN pg_catalog.pg_attribute a ON a.attrelid = %(table)s::regclass AND a.attname = k.name
  JOIN pg_catalog.pg_type t ON t.oid = a.atttypid JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
 ORDER BY k.ord
"""


def key_types(conn: Conn, table: str, key: list[str]) -> tuple[str, ...]:
    """Each key column's type, schema-qualified (the same text on both sides), in one query."""
    types = tuple(str(r[0]) for r in conn.execute(_KEY_TYPES, {"table": table, "columns": key}))
    if len(types) != len(key):
        raise LookupError(f"{table}: key columns {key}")
    return types


def key_rows(key: list[str], types: tuple[str, ...], keys: sql.Composable) -> sql.Composed:
    """``SELECT <key columns>`` of the JSON array *keys*, typed as the table's key, for ``(key) IN (...)``.

    Not ``jsonb_populate_recordset(NULL::table, …)``: that builds whole rows, and a column of a
    NOT NULL domain outside the key refuses the NULLs it would be given."""
    return sql.SQL("SELECT {cols} FROM pg_catalog.jsonb_to_recordset({keys}) AS __ferry_k({defs})").format(
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in key),
        keys=keys,
        defs=sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(key, types, strict=True)
        ),
    )


def _key_rows(table: _Table, keys: list[dict[str, Any]]) -> sql.Composed:
    return key_rows(list(table.key), table.key_types, sql.SQL("{}::jsonb").format(sql.Literal(json.dumps(keys))))


def _rows_by_keys(source: Conn, table: _Table, keys: list[dict[str, Any]]) -> str:
    """The source's current rows for *keys*, as COPY text (within the caller's snapshot)."""
    key_list = sql.SQL(", ").join(sql.Identifier(c) for c in table.key)
    query = sql.SQL("COPY (SELECT {cols} FROM ONLY {t} WHERE ({key}) IN ({keys})) TO STDOUT").format(
        cols=sql.SQL(", ").join(sql.SQL(c) for c in table.columns),
        t=sql.SQL(table.name),
        key=key_list,
        keys=_key_rows(table, keys),
    )
    return _copy_out(source, query)


def _copy_out(conn: Conn, query: sql.Composed) -> str:
    """Rows read from the source (its errors name the source, though the batch runs under the target's)."""
    chunks: list[bytes] = []
    with pg_errors("source"), conn.cursor().copy(query) as copy:
        for chunk in copy:
            chunks.append(bytes(chunk))
    return b"".join(chunks).decode()


def apply_batch(source: Conn, target: Conn, schema: str, *, limit: int = 5000) -> ApplyResult:
    """Apply one batch of the log; ``entries == 0`` when the log is empty.

    :param source: autocommit connection to the source.
    :param target: autocommit connection to the target.
    """
    log = in_capture(schema, CAPTURE_LOG)
    # Not READ ONLY: the entries are cleared in this same transaction once the target committed.
    source.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    # A row policy must never hide rows from the apply (it would delete them on the target and bring
    # nothing back): with row security off, a role a policy applies to gets an error instead.
    source.execute("SET LOCAL row_security = off")
    # Index expressions and predicates are read with every name qualified: they run on the target.
    source.execute("SET LOCAL search_path = ''")
    _settle(source)
    try:
        with pg_errors("source"):
            entries = source.execute(
                sql.SQL("SELECT id, rel, op, old_key, new_key FROM {} ORDER BY id LIMIT %s").format(log), (limit,)
            ).fetchall()
        if not entries:
            source.execute("COMMIT")
            return ApplyResult(0, 0, 0)
        by_table: dict[int, list[tuple[Any, ...]]] = {}
        for entry in entries:
            by_table.setdefault(int(entry[1]), []).append(entry)
        rows = truncated = 0
        with target.transaction():
            _relaxed(target)
            for rel, table_entries in by_table.items():
                try:
                    table = _table(source, schema, rel)
                except LookupError:
                    continue  # a table captured once and dropped since: nothing to bring
                if any(e[2] == "T" for e in table_entries):
                    rows += _copy_whole(source, target, table)
                    truncated += 1
                    record_changes(target, table.name, None)
                    continue
                keys = {json.dumps(k, sort_keys=True): k for e in table_entries for k in (e[3], e[4]) if k is not None}
                rows += _replace_rows(source, target, table, list(keys.values()))
                record_changes(target, table.name, list(keys.values()))
            with pg_errors("source"):
                xid = source.execute("SELECT pg_catalog.txid_current()").fetchone()
            assert xid is not None
            target.execute(
                f"INSERT INTO {FOLLOW_BATCHES} (entries, max_id, source_xid) VALUES (%s, %s, %s)",
                (len(entries), max(int(e[0]) for e in entries), int(xid[0])),
            )
            crashpoint("follow-batch-applying")  # written on the target, not committed
        # Cleared only once the target committed: a crash before the commit below re-applies the batch.
        crashpoint("follow-batch-committed")
        with pg_errors("source"):
            source.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(log), ([int(e[0]) for e in entries],))
            source.execute("COMMIT")
    except BaseException:
        if source.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            source.execute("ROLLBACK")
        raise
    crashpoint("follow-batch-cleared")
    return ApplyResult(len(entries), rows, truncated)


def prepare_target(target: Conn) -> None:
    """The target's record of applied batches and of the keys they changed (kept until the follow ends)."""
    target.execute(
        f"CREATE SCHEMA IF NOT EXISTS {FOLLOW_SCHEMA}; "
        f"CREATE TABLE IF NOT EXISTS {FOLLOW_BATCHES} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "entries int NOT NULL, max_id bigint NOT NULL, applied_at timestamptz NOT NULL DEFAULT now()); "
        # The source transaction that cleared the batch: one of ferry's own, for the freeze's witness.
        f"ALTER TABLE {FOLLOW_BATCHES} ADD COLUMN IF NOT EXISTS source_xid bigint; "
        f"CREATE TABLE IF NOT EXISTS {FOLLOW_CHANGED} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
        "rel text NOT NULL, key jsonb)"
    )


def record_changes(target: Conn, table: str, keys: list[dict[str, Any]] | None) -> None:
    """Which keys of *table* the batch rewrote (``None``: all of them), for the verify inside the freeze:
    a row checked equal while live and not named here since is still equal."""
    if keys is None:
        target.execute(f"INSERT INTO {FOLLOW_CHANGED} (rel, key) VALUES (%s, NULL)", (table,))
        return
    target.execute(
        f"INSERT INTO {FOLLOW_CHANGED} (rel, key) SELECT %s, k FROM pg_catalog.jsonb_array_elements(%s::jsonb) k",
        (table, json.dumps(keys)),
    )


_SETTLE = "SELECT " + ", ".join(f"pg_catalog.set_config('{k}', '{v}', true)" for k, v in KEY_SETTINGS)


def _settle(conn: Conn) -> None:
    """The settings keys are logged under (where their text depends on them): read back the same way."""
    conn.execute(_SETTLE)


def _relaxed(target: Conn) -> None:
    """Foreign keys and the target's own triggers pause for the batch where the role may ask for it;
    row policies never filter what it deletes and writes (an error instead)."""
    target.execute("SET LOCAL row_security = off")
    _settle(target)
    try:
        with target.transaction():
            target.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        pass


def _copy_whole(source: Conn, target: Conn, table: _Table) -> int:
    cols = sql.SQL(", ").join(sql.SQL(c) for c in table.columns)
    data = _copy_out(source, sql.SQL("COPY (SELECT {} FROM ONLY {}) TO STDOUT").format(cols, sql.SQL(table.name)))
    target.execute(sql.SQL("DELETE FROM ONLY {}").format(sql.SQL(table.name)))
    return _insert(target, table, data)


def _replace_rows(source: Conn, target: Conn, table: _Table, keys: list[dict[str, Any]]) -> int:
    t = sql.SQL(table.name)
    key = sql.SQL(", ").join(sql.Identifier(c) for c in table.key)
    pending = keys
    incoming: list[str] = []
    # Each round takes rows off the target, so the rounds end: the target holds finitely many.
    while pending:
        target.execute(
            sql.SQL("DELETE FROM ONLY {t} WHERE ({key}) IN ({k})").format(t=t, key=key, k=_key_rows(table, pending))
        )
        data = _rows_by_keys(source, table, pending)
        incoming.append(data)
        pending = []
        if data and table.conflicts:
            # Rows still on the target that hold a value an incoming row brings: they changed too
            # (their own entries may be in a later batch); take them out and read them by their key.
            _load_incoming(target, table, data)
            pending = take_out_colliders(target, table.name, table.key, table.conflicts)
    return _insert(target, table, "".join(incoming))


def _load_incoming(target: Conn, table: _Table, data: str) -> None:
    """*data* in a temporary table shaped like *table* (made anew for each table and round); its generated
    columns computed, since an index may be built on one."""
    cols = sql.SQL(", ").join(sql.SQL(c) for c in table.columns)
    generated = sql.SQL(" INCLUDING GENERATED") if target.info.server_version >= 120000 else sql.SQL("")
    target.execute("DROP TABLE IF EXISTS pg_temp._ferry_incoming")
    target.execute(
        sql.SQL("CREATE TEMP TABLE _ferry_incoming (LIKE {}{}) ON COMMIT DROP").format(sql.SQL(table.name), generated)
    )
    with target.cursor().copy(sql.SQL("COPY _ferry_incoming ({}) FROM STDIN").format(cols)) as copy:
        copy.write(data)


def _insert(target: Conn, table: _Table, data: str) -> int:
    if not data:
        return 0
    cols = sql.SQL(", ").join(sql.SQL(c) for c in table.columns)
    t = sql.SQL(table.name)
    _load_incoming(target, table, data)
    overriding = sql.SQL(" OVERRIDING SYSTEM VALUE") if table.identity_always else sql.SQL("")
    cur = target.execute(
        sql.SQL("INSERT INTO {t} ({cols}){o} SELECT {cols} FROM _ferry_incoming").format(t=t, cols=cols, o=overriding)
    )
    return max(cur.rowcount, 0)


_SEQUENCES = r"""
SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'S' AND n.nspname NOT IN ('pg_catalog', 'information_schema', %(capture)s, '_heroku')
   AND n.nspname NOT LIKE 'pg\_%%'
   -- every capture's schema, whatever its name (the copy leaves them all behind)
   AND pg_catalog.obj_description(n.oid, 'pg_namespace') IS DISTINCT FROM %(mark)s
"""


def sync_sequences(source: Conn, target: Conn) -> int:
    """Every sequence's real state (owned by a column or not, identity columns too) onto the target.

    Read from the sequence itself, never from ``max(column)``: a sequence may run ahead of
    every row (rolled-back inserts, values handed out and kept by the app).
    """
    ours = {"capture": CAPTURE_SCHEMA, "mark": CAPTURE_MARK}
    names = [str(r[0]) for r in source.execute(_SEQUENCES, ours)]
    present = {str(r[0]) for r in target.execute(_SEQUENCES, ours)}
    missing = [name for name in names if name not in present]
    if missing:
        raise SourceChangedError(
            f"sequence {missing[0]} exists on the source but not on the target (created after the copy)",
            side="target",
        )
    for name in names:
        row = source.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(name))).fetchone()
        assert row is not None
        target.execute("SELECT pg_catalog.setval(%s, %s, %s)", (name, row[0], row[1]))
    return len(names)


def copy_keyless_tables(source: Conn, target: Conn, schema: str = CAPTURE_SCHEMA) -> int:
    """Copy again, whole, every table capture cannot follow (no key): inside the freeze, their writes stopped."""
    copied = 0
    for found in capture_tables(source, schema):
        if found.capturable:
            continue
        info = source.execute(_TABLE_INFO, {"rel": found.oid}).fetchone()
        assert info is not None
        if not info[0]:
            continue  # a table with no columns: its rows are all alike and none can differ
        table = _Table(found.name, (), (), tuple(info[0]), (), bool(info[1]))
        with source.transaction(), target.transaction():
            # As in a batch: no row policy may hide rows from the copy (an error instead).
            source.execute("SET LOCAL row_security = off")
            target.execute("SET LOCAL row_security = off")
            _copy_whole(source, target, table)
        copied += 1
    return copied
