"""One copy at a time into a target database, and no leftovers of a killed one.

Every target session of a copy is named ``ferry copy <pid>`` (``application_name``).
The copy holds a session advisory lock in the target database for its whole run: a
second copy (or ``--resume``) into the same database is refused with the holder's pid.
Once the lock is ours, any other ``ferry copy`` session still in that database belongs
to a copy that was killed (its process is gone, its server session not yet): such a
session may still be committing an index build or a restore, so it is ended, and the
copy starts only when it is gone.
"""

from __future__ import annotations

import os

from migration.errors import CopyRunningError
from migration.postgres.catalog import Conn
from migration.postgres.footprint import COPY_APPLICATION_PREFIX
from migration.postgres.sessions import end_sessions

__all__ = ["COPY_APPLICATION_NAME", "copy_lock_held", "end_orphan_sessions", "take_copy_lock"]

COPY_APPLICATION_NAME = f"{COPY_APPLICATION_PREFIX}{os.getpid()}"
_LOCK_KEYS = (0x66657272, 0x79636F70)  # "ferr", "ycop": any two fixed ints
_ORPHANS = """
SELECT pid FROM pg_catalog.pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid()
   AND application_name LIKE %s AND application_name <> %s
"""


def take_copy_lock(admin: Conn) -> None:
    """Hold the target database's copy lock on *admin* (autocommit) until it closes.

    :raises CopyRunningError: when another copy holds it.
    """
    row = admin.execute("SELECT pg_catalog.pg_try_advisory_lock(%s, %s)", _LOCK_KEYS).fetchone()
    if row and row[0]:
        return
    holder = admin.execute(
        "SELECT a.application_name FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a USING (pid) "
        "WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND l.objsubid = 2 "
        "AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())",
        _LOCK_KEYS,
    ).fetchone()
    name = str(holder[0]) if holder and holder[0] else ""
    who = f" (pid {name.rsplit(' ', 1)[-1]})" if name.startswith(COPY_APPLICATION_PREFIX) else ""
    raise CopyRunningError(f"another copy is running into this database{who}; wait for it to end", side="target")


def copy_lock_held(conn: Conn) -> bool:
    """Whether a copy (its session, alive) holds this database's copy lock: a shared copy's helpers
    stop when their leader is gone."""
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = %s AND objid = %s AND objsubid = 2 "
        "AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()))",
        _LOCK_KEYS,
    ).fetchone()
    return bool(row and row[0])


def end_orphan_sessions(admin: Conn, wait_seconds: float = 60.0) -> int:
    """End the sessions a killed copy left behind in this database; return how many there were."""
    return end_sessions(
        admin,
        _ORPHANS,
        (COPY_APPLICATION_PREFIX + "%", COPY_APPLICATION_NAME),  # the prefix holds no LIKE wildcard
        wait_seconds=wait_seconds,
        error=CopyRunningError(
            "sessions of an earlier, killed copy are still running in this database and cannot be ended",
            side="target",
        ),
    )
