"""Is the target the very database the source is? Asked before anything is written.

Host names, addresses, ports, sockets and poolers all have many spellings, so ferry
does not compare URLs: it takes an advisory lock with a random key through the source
connection and looks for that lock in the target's ``pg_locks``. The lock is seen only
when both connections reach the same server and the same database. Nothing is written
to the source: an advisory lock lives in the session's memory and is released at once.
"""

from __future__ import annotations

import secrets

import psycopg

from migration.errors import SameStoreError
from migration.postgres.catalog import Conn
from migration.postgres.conninfo import PgEndpoint

__all__ = ["refuse_same_database", "same_database"]

_SEEN = """
SELECT EXISTS (
  SELECT 1 FROM pg_catalog.pg_locks
   WHERE locktype = 'advisory' AND objsubid = 1
     AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
     AND ((classid::bigint << 32) | objid::bigint) = %s)
"""

_FINGERPRINT = """
SELECT pg_catalog.pg_postmaster_start_time()::text, current_database(),
       (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())::text
"""


def same_database(source_conn: Conn, target_conn: Conn) -> bool:
    """True when both connections reach one database of one server, whatever their URLs say."""
    key = secrets.randbits(62)
    try:
        source_conn.execute("SELECT pg_catalog.pg_advisory_lock(%s)", (key,))
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.ObjectNotInPrerequisiteState):
        # A hot standby takes no advisory locks: the server's start time and the database's oid
        # tell two servers apart just as well.
        _end_transaction(source_conn)
        return source_conn.execute(_FINGERPRINT).fetchone() == target_conn.execute(_FINGERPRINT).fetchone()
    try:
        row = target_conn.execute(_SEEN, (key,)).fetchone()
        _end_transaction(target_conn)
        return bool(row and row[0])
    finally:
        source_conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", (key,))
        _end_transaction(source_conn)


def _end_transaction(conn: Conn) -> None:
    if not conn.autocommit:
        conn.rollback()


def refuse_same_database(source_conn: Conn, target_conn: Conn, target: PgEndpoint) -> None:
    """:raises SameStoreError: when the target is the source under another spelling."""
    if same_database(source_conn, target_conn):
        raise SameStoreError(
            f"{target.display} is the source database itself (same server and database); "
            "refusing to write to the source",
            side="target",
        )
