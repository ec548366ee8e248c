"""The source's side of the read-only freeze, and whether a target holds anything yet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from psycopg import sql

from migration.errors import FerryError
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import parse_url
from migration.postgres.copy.target import describe_contents
from migration.postgres.footprint import FOLLOW_SCHEMA, NOT_OUR_SCHEMA, STATE_SCHEMA

__all__ = ["capture_errors", "connect_source", "connect_target", "row_writes", "set_read_only", "target_is_empty"]


def set_read_only(url: str, on: bool) -> None:
    """Make the URL's role default to read-only transactions in its database (and end its sessions), or undo it."""
    endpoint = parse_url(url, "source")
    with connect(endpoint, autocommit=True) as conn, pg_errors("source", endpoint):
        database = sql.Identifier(endpoint.dbname)
        # This session may start read-only by the very setting (a run done before a crash): not for ferry.
        conn.execute("SET default_transaction_read_only = off")
        if on:
            # Scoped to this database: the role may reach others that must stay writable.
            conn.execute(
                sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET default_transaction_read_only = on").format(
                    database
                )
            )
            # Sessions opened before keep writing until they reconnect: end them.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = current_user AND datname = current_database() AND pid <> pg_backend_pid()"
            )
        else:
            conn.execute(
                sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} RESET default_transaction_read_only").format(database)
            )


def target_is_empty(url: str) -> bool:
    """No user object in the target database (a copy would start from scratch)."""
    endpoint = parse_url(url, "target")
    with connect(endpoint, autocommit=True) as conn, pg_errors("target", endpoint):
        return not describe_contents(conn)


def connect_source(url: str) -> Conn:
    """An autocommit connection to the source (errors name the source), writable whatever the read-only freeze
    set on a role ferry shares with the app (capture's log is cleared, the fence raised, through it)."""
    return connect(parse_url(url, "source"), autocommit=True, read_write=True)


def row_writes(url: str) -> int | None:
    """Rows the target's tables took so far (inserted, updated, deleted: the server's own counters, not
    ferry's schemas), or ``None`` when they cannot be read. A session's writes reach the counters when it
    ends or within seconds of its transaction; a reset of them (``pg_stat_reset``) takes the number back."""
    endpoint = parse_url(url, "target")
    try:
        with connect(endpoint, autocommit=True) as conn, pg_errors("target", endpoint):
            row = conn.execute(
                # Capture's log too: on a target followed back, every write of the app's is logged there.
                "SELECT pg_catalog.sum(s.n_tup_ins + s.n_tup_upd + s.n_tup_del)::bigint "
                "FROM pg_catalog.pg_stat_user_tables s JOIN pg_catalog.pg_class c ON c.oid = s.relid "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                f"WHERE s.schemaname NOT IN (%s, %s) AND {NOT_OUR_SCHEMA}",
                (STATE_SCHEMA, FOLLOW_SCHEMA),
            ).fetchone()
    except FerryError:
        return None
    return int(row[0] or 0) if row else None


def connect_target(url: str) -> Conn:
    """An autocommit connection to the target (errors name the target), writable as :func:`connect_source` is
    (a rollback's read-only freeze closes the role ferry may share with the app there)."""
    return connect(parse_url(url, "target"), autocommit=True, read_write=True)


@contextmanager
def capture_errors() -> Iterator[None]:
    """psycopg errors of the drain (both sides at once) as one line: the target's, where it fails most."""
    with pg_errors("target"):
        yield
