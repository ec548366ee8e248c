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
from migration.redis.url import RedisEndpoint, parse_redis_url

__all__ = ["LagReport", "replicate", "stop_replicating"]


#: Reports the replica's lag: bytes of the replication stream not yet processed, and the phase.
LagReport = Callable[[int, str], None]
_CATCH_UP_SECONDS = 30.0


def replicate(
    source: RedisEndpoint,
    target: RespConn,
    progress: ProgressSink,
    should_stop: Callable[[], bool],
    follow_seconds: float | None,
    report: LagReport | None = None,
) -> float:
    """Make *target* a replica of *source*, wait for the full sync, follow, then promote.

    Stopped, it waits (up to 30 s) until the replica has processed the source's whole replication
    stream before it promotes: with the source's writes paused, nothing is then in flight.
    *report* hears ``(bytes behind, phase)``: ``live`` while following, ``stopped`` once promoted.

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
    behind = -1
    try:
        with RespConn(source) as src:
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
                behind = _behind(src, target)
                if report is not None:
                    report(behind, "live")
                time.sleep(0.1)
            waited = time.monotonic()
            while (behind := _behind(src, target)) > 0 and time.monotonic() - waited < _CATCH_UP_SECONDS:
                time.sleep(0.01)
            return synced
    finally:
        _promote(target)
        progress.message("target promoted (REPLICAOF NO ONE)")
        if report is not None:
            report(max(behind, 0) if behind >= 0 else 1, "stopped")


def _behind(source: RespConn, target: RespConn) -> int:
    """Bytes of the source's replication stream the replica has not processed yet."""
    offset = int(info(source, "replication").get("master_repl_offset", "0"))
    processed = int(info(target, "replication").get("slave_repl_offset", "-1"))
    return max(0, offset - processed) if processed >= 0 else max(offset, 1)


def stop_replicating(target_url: str) -> None:
    """The target promoted and the source's credentials off it, whatever replicated into it before (a
    replicating worker killed mid-way)."""
    with RespConn(parse_redis_url(target_url, "target")) as target:
        _promote(target)


def _promote(target: RespConn) -> None:
    target.call("REPLICAOF", "NO", "ONE")
    # The source's password is the source's: it must not stay in the target's config (nor its user).
    target.call("CONFIG", "SET", "masterauth", "")
    target.call("CONFIG", "SET", "masteruser", "")
