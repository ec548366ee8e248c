"""Opening connections, and the one place where psycopg errors become ferry errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import errors as pgerrors
from psycopg.rows import TupleRow

from migration.errors import (
    AuthenticationError,
    ConnectError,
    DatabaseError,
    DatabaseMissingError,
    FerryError,
    HostUnreachableError,
    Side,
    SourceChangedError,
)
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.footprint import APPLICATION_NAME
from migration.redact import redact

__all__ = ["connect", "pg_errors", "translate"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if "FATAL:" in line:
            line = line.rsplit("FATAL:", 1)[1]
        elif line.startswith("connection") and "failed:" in line:
            line = line.rsplit("failed:", 1)[1]
        if line.strip():
            return redact(" ".join(line.split()))
    return redact(type(exc).__name__)


def translate(exc: BaseException, side: Side, endpoint: PgEndpoint | None = None) -> FerryError:
    """Turn a psycopg error into the matching :class:`FerryError` for *side*."""
    if isinstance(exc, FerryError):
        return exc
    where = f" ({endpoint.display})" if endpoint is not None else ""
    message = _first_line(exc)
    sqlstate = getattr(getattr(exc, "diag", None), "sqlstate", None) or getattr(exc, "sqlstate", None)
    lowered = message.lower()
    if (
        sqlstate in ("28P01", "28000")
        or "password authentication failed" in lowered
        or "no password supplied" in lowered
        or (sqlstate is None and "role" in lowered and "does not exist" in lowered)
    ):
        return AuthenticationError(f"authentication failed{where}: {message}", side=side)
    if sqlstate == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return DatabaseMissingError(f"database does not exist{where}: {message}", side=side)
    if isinstance(exc, psycopg.OperationalError) and sqlstate is None and "FATAL:" in str(exc):
        return ConnectError(f"the server refused the connection{where}: {message}", side=side)
    if isinstance(exc, psycopg.OperationalError) and sqlstate is None:
        return HostUnreachableError(f"cannot connect{where}: {message}", side=side)
    if isinstance(exc, pgerrors.UndefinedTable) and side == "source":
        return SourceChangedError(f"a table disappeared during the copy: {message}", side=side)
    return DatabaseError(message, side=side)


@contextmanager
def pg_errors(side: Side, endpoint: PgEndpoint | None = None) -> Iterator[None]:
    """Translate psycopg errors raised inside the block for *side*."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc, side, endpoint) from exc


def connect(
    endpoint: PgEndpoint,
    *,
    autocommit: bool = False,
    application_name: str = APPLICATION_NAME,
    read_write: bool = False,
) -> psycopg.Connection[TupleRow]:
    """Open a connection to *endpoint*; errors name its side.

    :param endpoint: where to connect.
    :param autocommit: open in autocommit mode.
    :param application_name: how the session shows in ``pg_stat_activity``.
    :param read_write: writable whatever the role's default says (the read-only freeze's setting, on a role
        ferry shares with the app, as on Heroku): for ferry's own writes (capture's log, the fence, its removal).
    """
    with pg_errors(endpoint.side, endpoint):
        conn = psycopg.connect(endpoint.conninfo(application_name=application_name), autocommit=autocommit)
        _no_timeouts(conn)
        if read_write:
            conn.execute("SET default_transaction_read_only = off")
            if not autocommit:
                conn.commit()
    return conn


def _no_timeouts(conn: psycopg.Connection[TupleRow]) -> None:
    """A database or role may set ``statement_timeout`` and the idle timeouts (Heroku suggests it): a COPY
    of a big table, or the snapshot a copy holds open while its workers read, would be cut short on every
    attempt. ferry's own sessions do without them (pg_dump does the same for itself)."""
    version = conn.info.server_version
    settings = ["statement_timeout"]
    if version >= 90600:
        settings.append("idle_in_transaction_session_timeout")
    if version >= 140000:
        settings.append("idle_session_timeout")
    conn.execute("SELECT " + ", ".join(f"pg_catalog.set_config('{name}', '0', false)" for name in settings))
    if not conn.autocommit:
        conn.commit()
