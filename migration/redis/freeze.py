"""Stopping the app's writes to the source Redis while reads go on (the read-only freeze).

``CLIENT PAUSE ms WRITE`` (Redis 6.2+) holds every write command, and key expiry and
eviction with them, while reads are served: the source stands still for the final sync
and the verify. Managed servers that refuse CONFIG still accept it. The pause outlives a
crash of ferry (it ends only by ``CLIENT UNPAUSE`` or its timeout), as a freeze must.
"""

from __future__ import annotations

import time

from migration.errors import FerryError, PreconditionError
from migration.redis.connection import CLIENT_NAME, RespConn
from migration.redis.info import client_list
from migration.redis.url import parse_redis_url

__all__ = ["PAUSE_SECONDS", "can_pause_writes", "pause_writes", "resume_writes"]

#: Long enough for any freeze; ``ferry rollback`` or the end of the run ends it sooner.
PAUSE_SECONDS = 24 * 3600
#: How long the end of a pause keeps refusing the writes it held, for clients that send them again.
HELD_GRACE_SECONDS = 15.0


def can_pause_writes(url: str) -> str | None:
    """``None`` when the server takes ``CLIENT PAUSE … WRITE``, else why not (probed for 1 ms)."""
    with RespConn(parse_redis_url(url, "source")) as conn:
        try:
            conn.call("CLIENT", "PAUSE", 1, "WRITE")
        except FerryError as exc:
            return f"the source Redis refuses CLIENT PAUSE WRITE (Redis 6.2+): {exc.message}"
    return None


def pause_writes(url: str) -> None:
    """Hold the source's writes (reads go on) until :func:`resume_writes`."""
    reason = can_pause_writes(url)
    if reason is not None:
        raise PreconditionError(f"{reason}; use migration.freeze: maintenance", side="source")
    with RespConn(parse_redis_url(url, "source")) as conn:
        conn.call("CLIENT", "PAUSE", PAUSE_SECONDS * 1000, "WRITE")


def resume_writes(url: str, *, refuse_held: bool = False) -> int:
    """End the pause; the writes it held run then.

    :param refuse_held: the app has moved away since the pause began (the follow back lifts it on the old
        Redis): the writes it held, sent before the switch, must not run there, acknowledged, where nobody reads
        — their clients are disconnected first (the app sees an error, not an acknowledgement). A client that
        retries sends its write again on a new connection, held again: disconnected again, until none has been
        held for a second (its retries spent) or :data:`HELD_GRACE_SECONDS` passed.
    :returns: how many held clients were disconnected.
    """
    with RespConn(parse_redis_url(url, "source")) as conn:
        refused = 0
        if refuse_held:
            deadline, quiet_since = time.monotonic() + HELD_GRACE_SECONDS, None
            while time.monotonic() < deadline:
                killed = _disconnect_held(conn)
                refused += killed
                now = time.monotonic()
                if killed:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = now
                elif now - quiet_since >= 1.0:
                    break
                time.sleep(0.05)
        conn.call("CLIENT", "UNPAUSE")
    return refused


def _disconnect_held(conn: RespConn) -> int:
    """Disconnect every client held by the pause ('b': blocked on its write), but ferry's own and *conn*."""
    me = int(conn.call("CLIENT", "ID"))
    refused = 0
    for fields in client_list(conn, "TYPE", "normal"):
        ours = fields.get("name") == CLIENT_NAME  # exactly: an app may name its own clients "ferry-…"
        if "b" in fields.get("flags", "") and int(fields.get("id", me)) != me and not ours:
            refused += int(conn.call("CLIENT", "KILL", "ID", fields["id"], "SKIPME", "yes"))
    return refused
