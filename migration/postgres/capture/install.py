"""``ferry pg capture install|remove``: put change capture on a live source, and take it off again.

Safe on a busy database: the schema, log and statement function are created first, touching
no table. Then each table gets its row function and triggers in a transaction of its own under a short
``lock_timeout``: ``CREATE TRIGGER`` needs a SHARE ROW EXCLUSIVE lock, and behind a long
transaction or an anti-wraparound vacuum it would otherwise wait while the app's queries
queue behind it. A table that cannot be locked is tried again with backoff; when it still
cannot, everything installed so far is removed and one line names the table. ``remove``
(dropping a trigger takes an ACCESS EXCLUSIVE lock) is careful in the same way and leaves
the source as it was before ``install``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from migration.errors import PreconditionError
from migration.postgres.capture.sql import (
    DEFAULT_SCHEMA,
    MARK,
    TRIGGERS,
    create_schema,
    fence_trigger,
    row_function,
    row_trigger,
    statement_function,
    truncate_trigger,
)
from migration.postgres.capture.tables import CaptureTable, capture_tables
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import parse_url

__all__ = [
    "CaptureSettings",
    "InstallResult",
    "install_capture",
    "remove_capture",
    "require_current_layout",
    "schema_state",
    "set_functions_fenced",
]


@dataclass(frozen=True)
class CaptureSettings:
    """How capture is installed.

    :param schema: the schema of ours on the source.
    :param lock_timeout_ms: how long one attempt may wait for a table's lock.
    :param attempts: tries per table before giving up (backoff doubles from 0.2 s).
    """

    schema: str = DEFAULT_SCHEMA
    lock_timeout_ms: int = 500
    attempts: int = 6


@dataclass
class InstallResult:
    """What ``install`` did (or, with ``dry_run``, would do)."""

    schema: str
    captured: list[CaptureTable] = field(default_factory=list)
    not_capturable: list[CaptureTable] = field(default_factory=list)
    dry_run: bool = False

    def to_json(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "dry_run": self.dry_run,
            "captured": [{"table": t.name, "key": list(t.key)} for t in self.captured],
            "not_capturable": [{"table": t.name, "bytes": t.bytes} for t in self.not_capturable],
        }


def schema_state(conn: Conn, schema: str) -> str:
    """``absent``, ``ours`` (made by install), or ``foreign`` (a schema of that name ferry did not make)."""
    row = conn.execute(
        "SELECT pg_catalog.obj_description(oid, 'pg_namespace') FROM pg_catalog.pg_namespace WHERE nspname = %s",
        (schema,),
    ).fetchone()
    if row is None:
        return "absent"
    return "ours" if row[0] == MARK else "foreign"


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
    """Install capture on every table with a key; tables without one are listed, not captured.

    :raises PreconditionError: a table stayed locked (nothing is left installed), or capture is
        already installed.
    """
    settings = settings or CaptureSettings()
    source = parse_url(source_url, "source")
    with connect(source, autocommit=True) as conn, pg_errors("source", source):
        tables = capture_tables(conn, settings.schema)
        result = InstallResult(
            settings.schema,
            [t for t in tables if t.capturable],
            [t for t in tables if not t.capturable],
            dry_run,
        )
        if dry_run:
            return result
        state = schema_state(conn, settings.schema)
        if state == "ours":
            raise PreconditionError(
                f"change capture is installed already (schema {settings.schema}); ferry pg capture remove takes it off",
                side="source",
            )
        if state == "foreign":
            raise PreconditionError(
                f"a schema named {settings.schema} exists and is not ferry's; pick another with --capture-schema",
                side="source",
            )
        with conn.transaction():
            conn.execute(create_schema(settings.schema))
        try:
            for table in result.captured:
                _install_table(conn, settings, table)
            for table in result.not_capturable:
                _install_fence_only(conn, settings, table)
        except BaseException:
            _remove(conn, settings)
            raise
    return result


def _install_table(conn: Conn, settings: CaptureSettings, table: CaptureTable) -> None:
    schema = sql.Identifier(settings.schema)

    def work() -> None:
        conn.execute(row_function(settings.schema, table.oid, list(table.key), fenced=False))
        conn.execute(row_trigger(settings.schema, table.name, table.oid))
        conn.execute(truncate_trigger(settings.schema, table.name))
        conn.execute(
            sql.SQL("INSERT INTO {}.captured (rel, name, key_columns) VALUES (%s, %s, %s)").format(schema),
            (table.oid, table.name, list(table.key)),
        )

    _with_lock_retries(conn, settings, table.name, "install its triggers", work)


def _install_fence_only(conn: Conn, settings: CaptureSettings, table: CaptureTable) -> None:
    def work() -> None:
        conn.execute(fence_trigger(settings.schema, table.name))

    _with_lock_retries(conn, settings, table.name, "install its fence trigger", work)


def require_current_layout(conn: Conn, schema: str) -> None:
    """:raises PreconditionError: capture was installed by an earlier ferry (one shared trigger function),
    which this fence could not close."""
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = %s AND p.proname = 'log_change')",
        (schema,),
    ).fetchone()
    if row and row[0]:
        raise PreconditionError(
            "change capture here was installed by an earlier ferry, whose triggers this one's fence cannot "
            "close: ferry pg capture remove, then copy and follow again",
            side="source",
        )


def set_functions_fenced(conn: Conn, schema: str, fenced: bool) -> None:
    """Every trigger function of ours replaced by one that refuses writes (*fenced*) or logs them.

    Run inside the caller's transaction; no table is locked."""
    conn.execute(statement_function(schema, fenced=fenced))
    rows = conn.execute(sql.SQL("SELECT rel, key_columns FROM {}.captured").format(sql.Identifier(schema)))
    for rel, key_columns in rows.fetchall():
        conn.execute(row_function(schema, int(rel), list(key_columns), fenced=fenced))


def remove_capture(source_url: str, settings: CaptureSettings | None = None) -> int:
    """Take every trigger, the function, the log and the schema of ours off the source.

    Returns how many tables had triggers. Safe to run again, and when nothing is installed.
    """
    settings = settings or CaptureSettings()
    source = parse_url(source_url, "source")
    with connect(source, autocommit=True) as conn, pg_errors("source", source):
        return _remove(conn, settings)


_OUR_TRIGGERS = """
SELECT DISTINCT format('%%I.%%I', n.nspname, c.relname)
  FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE t.tgname = ANY(%s) AND NOT t.tgisinternal
"""


def _remove(conn: Conn, settings: CaptureSettings) -> int:
    if schema_state(conn, settings.schema) == "foreign":
        raise PreconditionError(f"schema {settings.schema} is not ferry's change capture: left alone", side="source")
    tables = [str(r[0]) for r in conn.execute(_OUR_TRIGGERS, (list(TRIGGERS),))]
    for table in tables:

        def work(table: str = table) -> None:
            for trigger in TRIGGERS:
                conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(trigger), sql.SQL(table)))

        _with_lock_retries(conn, settings, table, "remove its triggers", work)
    if schema_state(conn, settings.schema) == "ours":
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(settings.schema)))
    return len(tables)
