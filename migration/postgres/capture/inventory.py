"""What capture has on the source, read from the catalog by identity, and whether it still holds.

A schema is capture's when it carries :data:`~migration.postgres.footprint.CAPTURE_MARK`; a trigger is
capture's when its function lives in that schema (never by its name: two captures, or the app's
own triggers, may share names). :func:`capture_problems` says, from the catalog alone and without
trusting the log, whether every table of the source is still covered as install left it: each
table recorded is there under the same oid and name (a table renamed, moved to another schema,
dropped, or rebuilt under its own name is not), each table created since is named, and each of
capture's triggers is the very one install made (its ``xmin`` is the installing transaction's:
one disabled, enabled again or replaced since has another), fires as install set it, and calls a
function whose body is capture's own (logging, or the fence's refusal).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from migration.errors import PreconditionError
from migration.postgres.capture.sql import LAYOUT, row_source, statement_source
from migration.postgres.capture.tables import CaptureTable, capture_tables
from migration.postgres.catalog import Conn
from migration.postgres.footprint import (
    CAPTURE_LAYOUT,
    CAPTURE_MARK,
    CAPTURE_TABLES,
    STATEMENT_FUNCTION,
    in_capture,
    row_function_name,
)

__all__ = [
    "Recorded",
    "capture_problems",
    "recorded_tables",
    "require_complete",
    "require_current_layout",
    "schema_state",
]


def schema_state(conn: Conn, schema: str) -> str:
    """``absent``, ``ours`` (made by install), or ``foreign`` (a schema of that name ferry did not make)."""
    row = conn.execute(
        "SELECT pg_catalog.obj_description(oid, 'pg_namespace') FROM pg_catalog.pg_namespace WHERE nspname = %s",
        (schema,),
    ).fetchone()
    if row is None:
        return "absent"
    return "ours" if row[0] == CAPTURE_MARK else "foreign"


def require_current_layout(conn: Conn, schema: str) -> None:
    """:raises PreconditionError: capture here was installed by another ferry, whose triggers and
    functions this one does not know (it cannot fence them, nor tell whether they still hold)."""
    row = conn.execute(
        "SELECT pg_catalog.to_regclass(pg_catalog.format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
        (schema, CAPTURE_LAYOUT),
    ).fetchone()
    version = None
    if row and row[0]:
        found = conn.execute(
            sql.SQL("SELECT max(version) FROM {}").format(in_capture(schema, CAPTURE_LAYOUT))
        ).fetchone()
        version = found[0] if found else None
    if version != LAYOUT:
        raise PreconditionError(
            "change capture here was installed by another version of ferry, whose triggers this one cannot "
            "check or fence: ferry pg capture remove, then copy and follow again",
            side="source",
        )


@dataclass(frozen=True)
class Recorded:
    """A table as install recorded it."""

    oid: int
    name: str
    key: tuple[str, ...]
    always: bool
    xid: int
    pinned: bool = False


def recorded_tables(conn: Conn, schema: str) -> list[Recorded]:
    rows = conn.execute(
        sql.SQL("SELECT rel, name, key_columns, always, xid, pinned FROM {} ORDER BY name").format(
            in_capture(schema, CAPTURE_TABLES)
        )
    )
    return [Recorded(int(r[0]), str(r[1]), tuple(r[2]), bool(r[3]), int(r[4]), bool(r[5])) for r in rows]


_OUR_TRIGGERS = """
SELECT t.tgrelid, p.proname, t.tgenabled, t.xmin::text::bigint, p.prosrc, p.oid
  FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
 WHERE p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %s)
"""


def capture_problems(conn: Conn, schema: str, tables: list[CaptureTable] | None = None) -> list[str]:
    """What no longer holds of the capture in *schema* (empty: every table is covered as install left it).

    :param tables: the source's tables now (read here when not given).
    """
    now = {t.oid: t for t in (tables if tables is not None else capture_tables(conn, schema, sizes=False))}
    recorded = {r.oid: r for r in recorded_tables(conn, schema)}
    by_name = {t.name: t for t in now.values()}
    problems: list[str] = []
    for item in recorded.values():
        table = now.get(item.oid)
        if table is None:
            again = by_name.get(item.name)
            problems.append(
                f"{item.name} was rebuilt since capture was installed (a new table under its name, without "
                "capture's triggers)"
                if again is not None and again.oid not in recorded
                else f"{item.name} was dropped since capture was installed"
            )
        elif table.name != item.name:
            problems.append(f"{item.name} was renamed to {table.name} since capture was installed")
        elif table.key != item.key:
            problems.append(f"the key of {item.name} changed since capture was installed")
    for table in now.values():
        if table.oid not in recorded and not any(p.startswith(f"{table.name} was rebuilt") for p in problems):
            problems.append(f"{table.name} was created since capture was installed (it has no triggers of capture's)")
    triggers: dict[int, list[tuple[str, str, int, str]]] = {}
    for rel, function, enabled, xmin, source, _oid in conn.execute(_OUR_TRIGGERS, (schema,)):
        triggers.setdefault(int(rel), []).append((str(function), str(enabled), int(xmin), str(source)))
    statement = {statement_source(schema, fenced=f).as_string(conn) for f in (False, True)}
    for item in recorded.values():
        if item.oid not in now:
            continue
        wanted = {STATEMENT_FUNCTION: statement}
        if item.key:
            wanted[row_function_name(item.oid)] = {
                row_source(schema, list(item.key), fenced=f).as_string(conn) for f in (False, True)
            }
        found = {function: (enabled, xmin, source) for function, enabled, xmin, source in triggers.get(item.oid, [])}
        for function, bodies in wanted.items():
            problem = _trigger_problem(item, found.get(function), bodies)
            if problem:
                problems.append(problem)
    return problems


def _trigger_problem(item: Recorded, found: tuple[str, int, str] | None, bodies: set[str]) -> str | None:
    if found is None:
        return f"a capture trigger of {item.name} is gone (dropped since install)"
    enabled, xmin, source = found
    if enabled == "D":
        return (
            f"a capture trigger of {item.name} is disabled (ALTER TABLE … DISABLE TRIGGER): its writes are not logged"
        )
    if enabled != ("A" if item.always else "O"):
        return f"a capture trigger of {item.name} was set to fire only in another session_replication_role"
    if xmin != item.xid % (1 << 32):
        return f"a capture trigger of {item.name} was altered since install (disabled and enabled again?)"
    if source not in bodies:
        return f"capture's trigger function for {item.name} was replaced since install"
    return None


def require_complete(conn: Conn, schema: str, before: str) -> None:
    """:raises PreconditionError: capture does not cover every table as install left it (*before*: what
    would not be safe, e.g. ``"following"``)."""
    problems = capture_problems(conn, schema)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PreconditionError(
            f"change capture no longer covers the source: {problems[0]}{more}; not safe for {before}: "
            "ferry pg capture remove, then copy and follow again",
            side="source",
        )
