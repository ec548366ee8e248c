"""``ferry pg capture install|remove``: put change capture on a live source, and take it off again.

Safe on a busy database: the schema, log and statement function are created first, touching
no table. Then each table gets its function and triggers in a transaction of its own under a
short ``lock_timeout``: ``CREATE TRIGGER`` needs a SHARE ROW EXCLUSIVE lock, and behind a long
transaction or an anti-wraparound vacuum it would otherwise wait while the app's queries
queue behind it. A table that cannot be locked is tried again with backoff; when it still
cannot, everything installed so far is removed and one line names the table. An install that
was killed half way is finished by the next one (each table's transaction records it, so the
next install knows what is missing). ``remove`` (dropping a trigger takes an ACCESS EXCLUSIVE
lock) is careful in the same way, takes off only the triggers whose function lives in its own
schema, and leaves the source as it was before ``install``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from migration.crashpoints import crashpoint
from migration.errors import PreconditionError
from migration.postgres.capture.inventory import (
    recorded_tables,
    require_complete,
    require_current_layout,
    schema_state,
)
from migration.postgres.capture.sql import (
    SETTLED_TYPES,
    create_schema,
    enable_always,
    passage_function,
    row_function,
    row_trigger,
    statement_function,
    statement_trigger,
)
from migration.postgres.capture.tables import CaptureTable, capture_tables
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import parse_url
from migration.postgres.footprint import CAPTURE_SCHEMA, CAPTURE_TABLES, in_capture, trigger_names

__all__ = [
    "CaptureSettings",
    "InstallResult",
    "ensure_capture",
    "install_capture",
    "remove_capture",
    "set_functions_fenced",
]


@dataclass(frozen=True)
class CaptureSettings:
    """How capture is installed.

    :param schema: the schema of ours on the source.
    :param lock_timeout_ms: how long one attempt may wait for a table's lock.
    :param attempts: tries per table before giving up (backoff doubles from 0.2 s).
    """

    schema: str = CAPTURE_SCHEMA
    lock_timeout_ms: int = 500
    attempts: int = 6


@dataclass
class InstallResult:
    """What ``install`` did (or, with ``dry_run``, would do).

    :param resumed: an earlier, interrupted install was finished (``captured`` lists only what was added).
    :param not_always: tables whose triggers do not fire for ``session_replication_role = replica``
        (ferry's role does not own them, and only an owner may say ``ENABLE ALWAYS``).
    """

    schema: str
    captured: list[CaptureTable] = field(default_factory=list)
    not_capturable: list[CaptureTable] = field(default_factory=list)
    dry_run: bool = False
    resumed: bool = False
    not_always: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "dry_run": self.dry_run,
            "resumed": self.resumed,
            "captured": [{"table": t.name, "key": list(t.key)} for t in self.captured],
            "not_capturable": [{"table": t.name, "bytes": t.bytes} for t in self.not_capturable],
            "not_always": self.not_always,
        }


def _with_lock_retries(conn: Conn, settings: CaptureSettings, table: str, what: str, work: Callable[[], None]) -> None:
    delay = 0.2
    for attempt in range(settings.attempts):
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = {int(settings.lock_timeout_ms)}")
                work()
            return
        except psycopg.errors.LockNotAvailable:
            if attempt == settings.attempts - 1:
                raise PreconditionError(
                    f"could not lock {table} to {what} within {settings.attempts} tries of "
                    f"{settings.lock_timeout_ms} ms (a long transaction or a vacuum holds it); try again later",
                    side="source",
                ) from None
            time.sleep(delay)
            delay *= 2


def install_capture(
    source_url: str, settings: CaptureSettings | None = None, *, dry_run: bool = False
) -> InstallResult:
    """Install capture on every table (a key's changes logged; without a key, only fenced).

    An install that was interrupted is finished: only the tables it had not reached are installed.

    :raises PreconditionError: a table stayed locked (nothing is left installed), capture is
        installed already and complete, or the schema is not ferry's.
    """
    settings = settings or CaptureSettings()
    source = parse_url(source_url, "source")
    with connect(source, autocommit=True) as conn, pg_errors("source", source):
        tables = capture_tables(conn, settings.schema)
        state = schema_state(conn, settings.schema)
        if state == "foreign":
            raise PreconditionError(
                f"a schema named {settings.schema} exists and is not ferry's; pick another with --capture-schema",
                side="source",
            )
        done: set[int] = set()
        if state == "ours":
            require_current_layout(conn, settings.schema)
            done = {r.oid for r in recorded_tables(conn, settings.schema)}
        todo = [t for t in tables if t.oid not in done]
        result = InstallResult(
            settings.schema,
            [t for t in todo if t.capturable],
            [t for t in todo if not t.capturable],
            dry_run,
            resumed=bool(done),
        )
        if dry_run:
            return result
        if state == "ours" and not todo:
            raise PreconditionError(
                f"change capture is installed already (schema {settings.schema}); ferry pg capture remove takes it off",
                side="source",
            )
        if state == "absent":
            with conn.transaction():
                conn.execute(create_schema(settings.schema))
        try:
            for table in todo:
                if not _install_table(conn, settings, table):
                    result.not_always.append(table.name)
        except BaseException:
            if not done:  # a fresh install leaves nothing behind; a resumed one keeps what it had
                _remove(conn, settings)
            raise
    return result


def ensure_capture(source_url: str, settings: CaptureSettings | None = None) -> InstallResult | None:
    """Before a copy's snapshot: capture on every table, installed now or finished where an install was
    interrupted (or tables were created since). Returns what was installed; ``None``: nothing was missing.

    :raises PreconditionError: capture is there but no longer covers a table as installed (a trigger
        disabled, a table rebuilt or renamed): remove it and install again.
    """
    settings = settings or CaptureSettings()
    source = parse_url(source_url, "source")
    with connect(source, autocommit=True) as conn, pg_errors("source", source):
        state = schema_state(conn, settings.schema)
        if state == "ours":
            require_current_layout(conn, settings.schema)
            recorded = {r.oid for r in recorded_tables(conn, settings.schema)}
            if all(t.oid in recorded for t in capture_tables(conn, settings.schema, sizes=False)):
                require_complete(conn, settings.schema, "a copy to follow")
                return None
    result = install_capture(source_url, settings)
    with connect(source, autocommit=True) as conn, pg_errors("source", source):
        require_complete(conn, settings.schema, "a copy to follow")
    return result


_OWNS = (
    "SELECT pg_catalog.pg_has_role(c.relowner, 'USAGE') FROM pg_catalog.pg_class c WHERE c.oid = %s"
    # A superuser owns every table for ALTER TABLE's purposes.
    " UNION ALL SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user"
)


def _install_table(conn: Conn, settings: CaptureSettings, table: CaptureTable) -> bool:
    """One table's function, triggers and record, in one transaction; whether they fire ALWAYS."""
    captured = in_capture(settings.schema, CAPTURE_TABLES)
    row_name, statement_name = trigger_names(settings.schema)
    # Only the owner may ENABLE ALWAYS; asked first, because a failed attempt would need a savepoint,
    # whose subtransaction id would then be the trigger's xmin instead of the install's.
    always = any(bool(r[0]) for r in conn.execute(_OWNS, (table.oid,)))
    pinned = table.capturable and _unsettled_key(conn, table)

    def work() -> None:
        if table.capturable:
            conn.execute(row_function(settings.schema, table.oid, list(table.key), fenced=False, pinned=pinned))
            conn.execute(row_trigger(settings.schema, table.name, table.oid))
        conn.execute(statement_trigger(settings.schema, table.name, logs_truncate=table.capturable))
        if always:
            if table.capturable:
                conn.execute(enable_always(table.name, row_name))
            conn.execute(enable_always(table.name, statement_name))
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (rel, name, key_columns, always, pinned, xid, storage) "
                "VALUES (%s, %s, %s, %s, %s, txid_current(), (SELECT relfilenode FROM pg_catalog.pg_class WHERE oid = %s))"
            ).format(captured),
            (table.oid, table.name, list(table.key), always, pinned, table.oid),
        )

    _with_lock_retries(conn, settings, table.name, "install its triggers", work)
    crashpoint("capture-table-installed")
    return always


# A key column's type, a domain's base type, an array's element: settled when its JSON never depends on
# the writer's session (an enum, a string type, or one of SETTLED_TYPES).
_KEY_TYPES = """
WITH RECURSIVE t(oid, depth) AS (
    SELECT a.atttypid, 0 FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = %(rel)s AND a.attname = ANY(%(key)s)
    UNION
    SELECT CASE WHEN y.typtype = 'd' THEN y.typbasetype ELSE y.typelem END, t.depth + 1
      FROM t JOIN pg_catalog.pg_type y ON y.oid = t.oid
     WHERE (y.typtype = 'd' OR y.typelem <> 0 AND y.typcategory = 'A') AND t.depth < 8
)
SELECT bool_or(NOT (y.typtype = 'e' OR y.typcategory = 'S' OR y.typname = ANY(%(settled)s))
               AND y.typtype <> 'd' AND NOT (y.typcategory = 'A' AND y.typelem <> 0))
  FROM t JOIN pg_catalog.pg_type y ON y.oid = t.oid
"""


def _unsettled_key(conn: Conn, table: CaptureTable) -> bool:
    row = conn.execute(
        _KEY_TYPES, {"rel": table.oid, "key": list(table.key), "settled": list(SETTLED_TYPES)}
    ).fetchone()
    return bool(row and row[0])


def set_functions_fenced(conn: Conn, schema: str, fenced: bool, *, passage: str | None = None) -> None:
    """Every trigger function of ours replaced by one that refuses writes (*fenced*) or logs them.

    :param passage: fenced, the hash of the passage a session may hold to write all the same (ferry's
        follower writing back: :mod:`.passage`), neither logged nor refused; ``None``: nobody passes.

    Run inside the caller's transaction; no table is locked."""
    conn.execute(passage_function(schema, passage if fenced else None))
    conn.execute(statement_function(schema, fenced=fenced))
    for item in recorded_tables(conn, schema):
        if item.key:
            conn.execute(row_function(schema, item.oid, list(item.key), fenced=fenced, pinned=item.pinned))


def remove_capture(source_url: str, settings: CaptureSettings | None = None) -> int:
    """Take every trigger, the functions, the log and the schema of ours off the source.

    Returns how many tables had triggers. Safe to run again, and when nothing is installed.
    """
    settings = settings or CaptureSettings()
    source = parse_url(source_url, "source")
    # After a read-only freeze the role ferry may share with the app defaults to read-only: ours to take off all the same.
    with connect(source, autocommit=True, read_write=True) as conn, pg_errors("source", source):
        return _remove(conn, settings)


# Found by identity: triggers whose function lives in this schema (another capture's, or the app's
# own triggers of the same name, stay).
_OUR_TRIGGERS = """
SELECT format('%%I.%%I', n.nspname, c.relname), t.tgname
  FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
 WHERE p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %s) AND NOT t.tgisinternal
 ORDER BY 1, 2
"""


def _remove(conn: Conn, settings: CaptureSettings) -> int:
    state = schema_state(conn, settings.schema)
    if state == "foreign":
        raise PreconditionError(f"schema {settings.schema} is not ferry's change capture: left alone", side="source")
    if state == "absent":
        return 0
    by_table: dict[str, list[str]] = {}
    for table, trigger in conn.execute(_OUR_TRIGGERS, (settings.schema,)):
        by_table.setdefault(str(table), []).append(str(trigger))
    for table, triggers in by_table.items():

        def work(table: str = table, triggers: list[str] = triggers) -> None:
            for trigger in triggers:
                conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger), sql.SQL(table)))

        _with_lock_retries(conn, settings, table, "remove its triggers", work)
        crashpoint("capture-table-removed")
    if schema_state(conn, settings.schema) == "ours":
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(settings.schema)))
    return len(by_table)
