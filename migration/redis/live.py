"""The live tail: keyspace notifications on the source feed a de-duplicated queue of keys to copy again.

Subscribed before the scan starts, so a write made during the scan is either seen by the
scan or queued here. ``lag()`` says how far behind the target is; zero queued and nothing
in flight means every write seen so far has arrived.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from migration.errors import FerryError, PreconditionError, SourceChangedError
from migration.redis.connection import RespConn, encode
from migration.redis.info import config_get, info
from migration.redis.url import RedisEndpoint, parse_redis_url

__all__ = ["FlushWatch", "Lag", "LiveTail", "notifications_status"]

_PREFIX = b"__keyspace@"
HEROKU_HINT = "heroku redis:keyspace-notifications -a APP -c KEA"


@dataclass(frozen=True)
class Lag:
    """How far the target is behind: keys waiting or in flight, and the oldest one's age."""

    queued: int
    seconds_behind: float

    @property
    def consistent(self) -> bool:
        return self.queued == 0


def notifications_status(conn: RespConn) -> str | None:
    """``notify-keyspace-events`` of the server, or ``None`` when CONFIG is refused."""
    return config_get(conn, "notify-keyspace-events")


def notifications_enabled(flags: str) -> bool:
    """Whether ``notify-keyspace-events`` reports every key change the live tail needs."""
    return "K" in flags and ("A" in flags or {"g", "$", "l", "s", "h", "z", "x", "e"} <= set(flags))


def require_notifications(conn: RespConn) -> str | None:
    """Fail when notifications are known to be off; return a warning when they cannot be checked."""
    flags = notifications_status(conn)
    if flags is None:
        return (
            "cannot read notify-keyspace-events (CONFIG refused); the live tail needs it set to KEA. "
            f"On Heroku: {HEROKU_HINT}"
        )
    if not notifications_enabled(flags):
        raise PreconditionError(
            f"keyspace notifications are off (notify-keyspace-events={flags!r}); enable them with "
            f"CONFIG SET notify-keyspace-events KEA, or on Heroku: {HEROKU_HINT}",
            side="source",
        )
    return None


def notifications_at(url: str) -> str | None:
    """Why the Redis at *url* (the new one, followed back) cannot be followed live (``None``: it can, or
    CONFIG is refused and the stack's parameter group is trusted to have set them)."""
    with RespConn(parse_redis_url(url, "target")) as conn:
        flags = notifications_status(conn)
    if flags is None or notifications_enabled(flags):
        return None
    return f"keyspace notifications are off on the new Redis (notify-keyspace-events={flags!r})"


class FlushWatch:
    """Notices FLUSHDB, FLUSHALL and SWAPDB on the source, which keyspace notifications never announce.

    They would leave keys on the target that the source no longer has (or has in another
    database) while the lag reads zero. ``INFO commandstats`` counts their calls: any change
    from the count taken before the scan stops the live copy with one line saying so (the
    runbook then copies again inside the freeze, onto an emptied target).
    """

    _COMMANDS = ("flushdb", "flushall", "swapdb")

    def __init__(self, source: RedisEndpoint) -> None:
        self._source = source
        self._baseline = self._calls()
        self._checked = time.monotonic()

    @property
    def available(self) -> bool:
        return self._baseline is not None

    def _calls(self) -> dict[str, int] | None:
        try:
            with RespConn(self._source) as conn:
                stats = info(conn, "commandstats")
        except FerryError:
            return None  # INFO refused: nothing to watch with
        calls: dict[str, int] = {}
        for name in self._COMMANDS:
            fields = dict(
                item.split("=", 1) for item in stats.get(f"cmdstat_{name}", "calls=0").split(",") if "=" in item
            )
            calls[name] = int(fields.get("calls", "0"))
        return calls

    def check(self, *, every: float = 0.5) -> None:
        """:raises SourceChangedError: when a flush or swap ran on the source since the watch began."""
        if self._baseline is None or time.monotonic() - self._checked < every:
            return
        self._checked = time.monotonic()
        now = self._calls()
        if now is None or now == self._baseline:
            return
        ran = ", ".join(name.upper() for name in self._COMMANDS if now.get(name) != self._baseline.get(name))
        raise SourceChangedError(
            f"{ran} ran on the source during the live copy (keyspace notifications do not carry it): "
            "the target may keep keys the source lost; copy again (ferry redis copy --flush-target)",
            side="source",
        )


class LiveTail:
    """Follows every database of the source through ``PSUBSCRIBE __keyspace@*__:*``."""

    def __init__(self, source: RedisEndpoint) -> None:
        self._conn = RespConn(source)
        self._conn.send(encode("PSUBSCRIBE", "__keyspace@*__:*"))
        self._conn.read(1)
        self._queue: OrderedDict[tuple[int, bytes], float] = OrderedDict()
        self._in_flight: dict[tuple[int, bytes], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.events = 0
        self.error: FerryError | None = None
        self._thread = threading.Thread(target=self._listen, name="ferry-redis-live", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        try:
            while not self._stop.is_set():
                message = self._conn.poll(0.05)  # a stop waits for this, inside the freeze
                if not message or message[0] != b"pmessage":
                    continue
                channel: bytes = message[2]
                db_part, _, key = channel[len(_PREFIX) :].partition(b"__:")
                with self._lock:
                    self.events += 1
                    entry = (int(db_part), key)
                    if entry not in self._queue:
                        self._queue[entry] = time.monotonic()
        except FerryError as exc:
            self.error = exc

    def take(self, limit: int) -> dict[int, list[bytes]]:
        """Up to *limit* queued keys, oldest first, grouped by database; they count as in flight."""
        taken: dict[int, list[bytes]] = {}
        with self._lock:
            while self._queue and limit > 0:
                entry, seen = self._queue.popitem(last=False)
                self._in_flight[entry] = seen
                taken.setdefault(entry[0], []).append(entry[1])
                limit -= 1
        return taken

    def done(self, db: int, keys: list[bytes]) -> None:
        with self._lock:
            for key in keys:
                self._in_flight.pop((db, key), None)

    def lag(self) -> Lag:
        with self._lock:
            oldest = min([*self._queue.values(), *self._in_flight.values()], default=None)
            queued = len(self._queue) + len(self._in_flight)
        return Lag(queued, 0.0 if oldest is None else time.monotonic() - oldest)

    def stop(self) -> None:
        """Stop listening (safe to call twice); what is queued stays to be drained."""
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()
