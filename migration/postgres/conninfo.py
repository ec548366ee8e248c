"""Connection URLs: parsing, validation, redaction and handing them to child programs.

A password never goes on a child's command line: pg_dump and pg_restore get the
connection through libpq environment variables instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

import psycopg.conninfo

from migration.errors import InvalidURLError, Side
from migration.redact import register_secret

__all__ = ["PgEndpoint", "parse_url"]

_LIBPQ_ENV = {
    "host": "PGHOST",
    "hostaddr": "PGHOSTADDR",
    "port": "PGPORT",
    "dbname": "PGDATABASE",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "passfile": "PGPASSFILE",
}


@dataclass(frozen=True)
class PgEndpoint:
    """One side of a copy: where to connect, and which side it is.

    :param side: ``"source"`` or ``"target"``, used in every error about it.
    :param params: libpq connection parameters (may hold the password).
    """

    side: Side
    params: dict[str, str] = field(repr=False)

    @property
    def dbname(self) -> str:
        return self.params.get("dbname", "")

    @property
    def display(self) -> str:
        """``user@host:port/dbname`` — safe to print."""
        user = self.params.get("user", "")
        host = self.params.get("host", "localhost")
        port = self.params.get("port", "5432")
        return f"{user + '@' if user else ''}{host}:{port}/{self.dbname}"

    def conninfo(self, **overrides: str) -> str:
        params = {"connect_timeout": "10", **self.params, **overrides}
        return psycopg.conninfo.make_conninfo(**params)

    def with_dbname(self, dbname: str) -> PgEndpoint:
        return PgEndpoint(self.side, {**self.params, "dbname": dbname})

    def child_env(self) -> dict[str, str]:
        """Environment for pg_dump/pg_restore: the connection as libpq variables.

        The URL's parameters override the inherited ``PG*`` variables, so a child
        connects exactly where ferry's own libpq connection goes.
        """
        env = dict(os.environ)
        for key, value in {"connect_timeout": "10", **self.params}.items():
            if key in _LIBPQ_ENV:
                env[_LIBPQ_ENV[key]] = value
        return env


def parse_url(url: str, side: Side) -> PgEndpoint:
    """Parse a ``postgres://`` URL (or a libpq keyword string) for *side*.

    :raises InvalidURLError: when the URL is malformed; the message never holds the password.
    """
    if not url or not url.strip():
        raise InvalidURLError("no database URL given", side=side)
    url = url.strip()
    if "://" in url:
        try:
            parts = urlsplit(url)
        except ValueError as exc:  # e.g. "[::1" without its closing bracket
            raise InvalidURLError(f"malformed database URL: {exc}", side=side) from None
        if parts.password:
            register_secret(unquote(parts.password))
        if parts.scheme not in ("postgres", "postgresql"):
            raise InvalidURLError(f"URL scheme must be postgres:// or postgresql://, not {parts.scheme}://", side=side)
        try:
            port = parts.port
        except ValueError:
            raise InvalidURLError("URL has an invalid port", side=side) from None
        if not parts.hostname and "host=" not in parts.query:
            raise InvalidURLError("URL names no host (postgres://user@HOST:port/db, or ?host=/socket/dir)", side=side)
        if not parts.path.strip("/"):
            raise InvalidURLError("URL names no database (postgres://user@host:port/DBNAME)", side=side)
        if port is not None and not 0 < port < 65536:
            raise InvalidURLError("URL has an invalid port", side=side)
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise InvalidURLError("malformed database URL", side=side) from None
    clean = {k: str(v) for k, v in params.items() if v is not None}
    register_secret(clean.get("password"))
    if "dbname" not in clean:
        raise InvalidURLError("URL names no database", side=side)
    return PgEndpoint(side, clean)
