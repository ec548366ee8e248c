"""One applier at a time: per change log on the source, and per target database.

Two followers on one log would each clear entries the other has not applied (every write
the second one takes is lost to the first one's target), and two followers into one target
trip over each other's rows. So whatever applies the log (``ferry pg follow``, the drain to
the fence's marker) first claims both: a session-level advisory lock on the source keyed by the
capture schema's oid, and one on the target. A killed follower's session ends and its claims
with it, but only once the server notices its client is gone (after the statement it was running):
a claim held is waited for a while before it is refused, so a follower started again right after a
``kill -9`` goes on. Nothing is written to either side.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from migration.errors import PreconditionError
from migration.postgres.catalog import Conn

__all__ = ["claimed"]

# Advisory lock keys (the two-int form: objsubid 2, never confused with the copy's or the identity check's).
_SOURCE_CLASS = 0x46_45_52_31  # "FER1": applying a capture schema's log
_TARGET_CLASS = 0x46_45_52_32  # "FER2": applying a log into this database

#: How long a claim held by another session is waited for: a killed follower's session ends once its
#: statement does (a batch: well under this), a live follower's never does.
CLAIM_WAIT_SECONDS = 15.0

_HOLDER = """
SELECT l.pid FROM pg_catalog.pg_locks l
 WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid = %s AND l.objid = %s AND l.granted
   AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
"""


def _claim(conn: Conn, key: tuple[int, int], what: str, side: str) -> None:
    deadline = time.monotonic() + CLAIM_WAIT_SECONDS
    while True:
        row = conn.execute("SELECT pg_catalog.pg_try_advisory_lock(%s, %s)", key).fetchone()
        if row and row[0]:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    holder = conn.execute(_HOLDER, (key[0] & 0xFFFFFFFF, key[1] & 0xFFFFFFFF)).fetchone()
    pid = f" (server pid {holder[0]})" if holder else ""
    raise PreconditionError(
        f"another ferry follower is applying {what}{pid}, still after {CLAIM_WAIT_SECONDS:g} s: one at a time "
        "(stop it, or wait for it to end)",
        side="source" if side == "source" else "target",
    )


def _release(conn: Conn, key: tuple[int, int]) -> None:
    if not conn.closed:
        conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s, %s)", key)


@contextmanager
def claimed(source: Conn, target: Conn, schema: str) -> Iterator[None]:
    """Hold the log of *schema* on *source* and the *target* database for the block (both autocommit).

    :raises PreconditionError: another follower holds either.
    """
    row = source.execute("SELECT oid::int FROM pg_catalog.pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    source_key = (_SOURCE_CLASS, int(row[0]) if row else 0)
    target_key = (_TARGET_CLASS, 0)
    _claim(source, source_key, f"the change log {schema} of this source", "source")
    try:
        _claim(target, target_key, "changes into this target database", "target")
        try:
            yield
        finally:
            _release(target, target_key)
    finally:
        _release(source, source_key)
