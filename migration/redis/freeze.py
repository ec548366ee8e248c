"""Stopping the app's writes to the source Redis while reads go on (the read-only freeze).

``CLIENT PAUSE ms WRITE`` (Redis 6.2+) holds every write command, and key expiry and
eviction with them, while reads are served: the source stands still for the final sync
and the verify. Managed servers that refuse CONFIG still accept it. The pause outlives a
crash of ferry (it ends only by ``CLIENT UNPAUSE`` or its timeout), as a freeze must.
"""

from __future__ import annotations

from migration.errors import FerryError, PreconditionError
from migration.redis.connection import RespConn
from migration.redis.url import parse_redis_url

__all__ = ["PAUSE_SECONDS", "can_pause_writes", "pause_writes", "resume_writes"]

#: Long enough for any freeze; ``ferry rollback`` or the end of the run ends it sooner.
PAUSE_SECONDS = 24 * 3600


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


def resume_writes(url: str) -> None:
    with RespConn(parse_redis_url(url, "source")) as conn:
        conn.call("CLIENT", "UNPAUSE")
