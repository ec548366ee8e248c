"""Checks shared by ``ferry pg copy`` and ``ferry pg preflight``."""

from __future__ import annotations

import re

import psycopg

from migration.errors import DatabaseMissingError, PreconditionError, ResumeError, TargetNotEmptyError, UsageError
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.copy.state import CopyState, load_state
from migration.postgres.copy.target import describe_contents

__all__ = [
    "available_extensions",
    "check_target",
    "ensure_database",
    "installed_extensions",
    "parse_memory_setting",
    "require_writable",
]


def installed_extensions(conn: Conn) -> set[str]:
    """Extensions in the database (plpgsql, always there, left out)."""
    return {str(r[0]) for r in conn.execute("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql'")}


def available_extensions(conn: Conn) -> set[str]:
    """Extensions the server could install."""
    return {str(r[0]) for r in conn.execute("SELECT name FROM pg_available_extensions")}


def ensure_database(target: PgEndpoint, create: bool) -> None:
    try:
        connect(target).close()
    except DatabaseMissingError:
        if not create:
            raise
        with connect(target.with_dbname("postgres"), autocommit=True) as admin, pg_errors("target", target):
            admin.execute(f"CREATE DATABASE {psycopg.sql.Identifier(target.dbname).as_string()}")


def check_target(control: Conn, source: PgEndpoint | str, *, resume: bool, clean: bool) -> CopyState | None:
    """What the target holds: the state to resume, or nothing (it is emptied later, with ``--clean``).

    Nothing is dropped here: ``--clean`` empties the target in the transaction that
    restores the schema, once the source's schema has been dumped without error.

    :param source: the source, or how another kind of source names itself (an archive).
    """
    shown = source if isinstance(source, str) else source.display
    state = load_state(control)
    if resume:
        if state is None:
            raise ResumeError("no unfinished copy to resume in this database", side="target")
        if state.source != shown:
            raise ResumeError(f"the unfinished copy here came from {state.source}, not {shown}", side="target")
        return state
    if state is not None and not clean:
        raise TargetNotEmptyError(
            "database holds an unfinished ferry copy; pass --resume to finish it or --clean to start over",
            side="target",
        )
    contents = describe_contents(control)
    if contents and not clean:
        raise TargetNotEmptyError(
            f"database {control.info.dbname} is not empty ({', '.join(contents)}); "
            "pass --clean to drop everything in it first",
            side="target",
        )
    return None


def require_writable(conn: Conn) -> None:
    """:raises PreconditionError: when the target server or database only takes reads."""
    row = conn.execute("SELECT pg_catalog.pg_is_in_recovery(), current_setting('transaction_read_only')").fetchone()
    if row is not None and row[0]:
        raise PreconditionError("the target is a standby in recovery: it takes no writes", side="target")
    if row is not None and row[1] == "on":
        raise PreconditionError("the target database is read-only (default_transaction_read_only)", side="target")


_MEMORY = re.compile(r"^\s*\d+\s*(B|kB|MB|GB|TB)?\s*$")


def parse_memory_setting(value: str) -> str:
    """A PostgreSQL memory setting such as ``512MB``, checked before anything runs.

    :raises UsageError: when the server would refuse it.
    """
    if not _MEMORY.match(value):
        raise UsageError(f"--maintenance-work-mem {value!r} is not a PostgreSQL memory size (such as 512MB or 1GB)")
    return value.strip()
