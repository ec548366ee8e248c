"""``--replicaof``: the target replicates the source, then is promoted at cutover.

Only where the target allows it (self-managed Redis): ElastiCache and Heroku refuse
REPLICAOF. The source password reaches the target as ``CONFIG SET masterauth`` over the
connection, never on a command line.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from migration.errors import PreconditionError
from migration.progress import ProgressSink
from migration.redis.connection import RespConn
from migration.redis.info import info
from migration.redis.url import RedisEndpoint

__all__ = ["replicate"]


def replicate(
    source: RedisEndpoint,
    target: RespConn,
    progress: ProgressSink,
    should_stop: Callable[[], bool],
    follow_seconds: float | None,
) -> float:
    """Make *target* a replica of *source*, wait for the full sync, follow, then promote.

    Returns the seconds the initial sync took.
    """
    if source.tls:
        raise PreconditionError("--replicaof over TLS is not supported; use the scan copy", side="source")
    if source.password:
        target.call("CONFIG", "SET", "masterauth", source.password)
        if source.username:
            target.call("CONFIG", "SET", "masteruser", source.username)
    started = time.monotonic()
    target.call("REPLICAOF", source.host, source.port)
    progress.message(f"target is replicating {source.display}; waiting for the full sync")
    try:
        while True:
            replication = info(target, "replication")
            if replication.get("master_link_status") == "up" and replication.get("master_sync_in_progress") == "0":
                break
            if time.monotonic() - started > 3600:
                raise PreconditionError("the replica did not finish its sync within an hour", side="target")
            if should_stop():
                raise KeyboardInterrupt  # stopped before the full sync: the target is promoted as it is
            time.sleep(0.05)
        synced = time.monotonic() - started
        progress.message(f"full sync done in {synced:.1f} s; following until stopped")
        deadline = None if follow_seconds is None else time.monotonic() + follow_seconds
        while not should_stop() and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.1)
        return synced
    finally:
        target.call("REPLICAOF", "NO", "ONE")
        if source.password:
            target.call("CONFIG", "SET", "masterauth", "")
        progress.message("target promoted (REPLICAOF NO ONE)")
