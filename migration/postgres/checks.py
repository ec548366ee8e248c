"""Checks shared by ``ferry pg copy`` and ``ferry pg preflight``."""

from __future__ import annotations

import psycopg

from migration.errors import DatabaseMissingError, ResumeError, TargetNotEmptyError
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.state import CopyState, load_state
from migration.postgres.target import clean_target, describe_contents

__all__ = ["available_extensions", "ensure_database", "installed_extensions", "prepare_target"]


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


def prepare_target(control: Conn, source: PgEndpoint, *, resume: bool, clean: bool) -> CopyState | None:
    """Decide what the target holds: the state to resume, or nothing (after ``--clean``)."""
    state = load_state(control)
    if resume:
        if state is None:
            raise ResumeError("no unfinished copy to resume in this database", side="target")
        if state.source != source.display:
            raise ResumeError(f"the unfinished copy here came from {state.source}, not {source.display}", side="target")
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
    if contents or state is not None:
        clean_target(control)
    return None
