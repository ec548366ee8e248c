"""Which keys changed on one server, told by Redis's key tracking: the witness the freeze's verify trusts.

The live copy learns which keys to copy again from keyspace notifications; a verify that compared
again only the keys those named would trust the mechanism it checks. Key tracking (``CLIENT TRACKING
… BCAST``, the invalidations of client-side caching) is another path through the server: every write
signals its keys there, as it does to ``WATCH`` (``signalModifiedKey``), whatever command,
transaction, script or expiry made it, and whether ``notify-keyspace-events`` is set or not. A witness
started before the live pass names every key written on its side since; sealed once writes stopped (a
``PING`` sent on the same connection comes back after every invalidation queued before it), a key
compared equal while live and named by neither side's witness is still equal.

What tracking does not name, the witness takes from ``INFO commandstats``, sampled every half second:
``FLUSHDB``/``FLUSHALL`` (an invalidation without keys), ``SWAPDB`` (none at all), ``DEBUG`` and
``PFDEBUG``; the consumer-group commands (``XREADGROUP``, ``XGROUP``, ``XACK``, ``XCLAIM``,
``XAUTOCLAIM``, ``XSETID``: Redis 7.0 signals none of them) make every stream be compared. A
``CONFIG RESETSTAT`` would hide such a call: its own statistics changing, or the commands processed or
connections received going back, say one ran. Its
connection lost, tracking switched off or pointed elsewhere, a command it cannot see past, too many
keys: the witness cannot say, and the verify compares every key. It only reads: tracking changes
nothing on the server.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import hiredis

from migration.errors import FerryError
from migration.redis.connection import RespConn
from migration.redis.info import info
from migration.redis.url import RedisEndpoint

__all__ = ["ChangeWitness", "Testimony"]

_CHANNEL = b"__redis__:invalidate"
#: Commands that change keys without tracking naming them one by one.
_UNNAMED = ("flushdb", "flushall", "swapdb", "debug", "pfdebug")
#: Commands that change a stream's groups, consumers or pending entries, which tracking does not name.
_STREAM_GROUPS = ("xreadgroup", "xgroup", "xack", "xclaim", "xautoclaim", "xsetid")
_SEAL_SECONDS = 10.0
#: How often the counters are read (an idle tracking connection kept open by the same call).
_SAMPLE_SECONDS = 0.5


@dataclass(frozen=True)
class Testimony:
    """What a sealed witness says: the key names written since it started, or why it cannot say."""

    keys: frozenset[bytes] | None
    reason: str = ""
    #: A consumer-group command ran: every stream is to be compared.
    streams: bool = False

    @property
    def complete(self) -> bool:
        return self.keys is not None


@dataclass(frozen=True)
class _Counters:
    #: What only grows until a reset: commands processed, connections received.
    growing: tuple[int, int]
    calls: dict[str, int]
    #: The statistics of CONFIG RESETSTAT itself (of CONFIG before Redis 7): a reset writes them anew.
    resets: str


def _counters(conn: RespConn) -> _Counters:
    calls = dict.fromkeys((*_UNNAMED, *_STREAM_GROUPS), 0)
    stats = info(conn, "commandstats")
    for stat, value in stats.items():
        # Redis 7 counts a container's subcommands apart: cmdstat_xgroup|create.
        name = stat.removeprefix("cmdstat_").partition("|")[0]
        if name in calls:
            fields = dict(item.split("=", 1) for item in value.split(",") if "=" in item)
            calls[name] += int(fields.get("calls", "0")) + int(fields.get("failed_calls", "0"))
    resets = stats.get("cmdstat_config|resetstat", stats.get("cmdstat_config", ""))
    totals = info(conn, "stats")
    growing = (int(totals.get("total_commands_processed", "0")), int(totals.get("total_connections_received", "0")))
    return _Counters(growing, calls, resets)


class ChangeWitness:
    """Collects the names of the keys written on one server from the moment it is made.

    :param max_keys: past this many distinct names it stops collecting and can no longer say (a
        full comparison costs less than keeping them).
    :raises FerryError: the server refuses tracking or ``INFO`` (the caller goes without a witness).
    """

    def __init__(self, endpoint: RedisEndpoint, *, max_keys: int = 200_000) -> None:
        self.endpoint = endpoint
        self._max_keys = max_keys
        self._keys: set[bytes] = set()
        self._streams = False
        self._lock = threading.Lock()
        self._sampling = threading.Lock()
        self._broken = ""
        self._stop = threading.Event()
        self._listener = RespConn(endpoint, timeout=_SEAL_SECONDS)
        self._tracker: RespConn | None = None
        try:
            self._listener_id = int(self._listener.call("CLIENT", "ID"))
            self._last = _counters(self._listener)
            self._listener.call("SUBSCRIBE", _CHANNEL)
            self._tracker = RespConn(endpoint, timeout=_SEAL_SECONDS)
            self._tracker.call("CLIENT", "TRACKING", "on", "REDIRECT", self._listener_id, "BCAST")
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._listen, name=f"ferry-redis-witness-{endpoint.side}", daemon=True)
        self._thread.start()
        # Tracking is on once its reply came; an invalidation from before it is harmless (a name too many).

    def _listen(self) -> None:
        assert self._tracker is not None
        sampled = time.monotonic()
        try:
            while not self._stop.is_set():
                # A seal waits for this loop to notice its stop: inside the freeze, every hundredth counts.
                self._receive(self._listener.poll(0.01))
                if time.monotonic() - sampled > _SAMPLE_SECONDS:
                    # Also keeps the tracking connection busy: a server with a `timeout` (Heroku's: 300 s) closes
                    # an idle client, and its tracking with it.
                    self._sample(self._tracker)
                    sampled = time.monotonic()
        except FerryError as exc:
            self._fail(f"its connection was lost ({exc.message})")

    def _fail(self, reason: str) -> None:
        with self._lock:
            self._broken = self._broken or reason

    def _sample(self, conn: RespConn) -> None:
        """The counters read again: a command tracking does not name, or a reset that could hide one."""
        with self._sampling:  # one reading at a time, so each is compared with the one before it
            self._compare(_counters(conn))

    def _compare(self, now: _Counters) -> None:
        with self._lock:
            last, self._last = self._last, now
            # A reset could hide a call counted below: its own statistics change, and what only grows goes back
            # (commands can be climbed back over in one script; connections, not without connecting).
            if now.resets != last.resets or any(n < b for n, b in zip(now.growing, last.growing, strict=True)):
                self._broken = self._broken or "the server's statistics were reset (CONFIG RESETSTAT)"
            ran = [name.upper() for name in _UNNAMED if now.calls[name] != last.calls[name]]
            if ran:
                self._broken = self._broken or f"{', '.join(ran)} ran (tracking does not name the keys it changes)"
            self._streams = self._streams or any(now.calls[n] != last.calls[n] for n in _STREAM_GROUPS)

    def _receive(self, message: object) -> bool:
        """Take one message; True for the answer to the seal's ``PING``."""
        if message == [b"pong", b""]:
            return True
        if isinstance(message, hiredis.ReplyError):
            raise FerryError(str(message), side=self.endpoint.side)
        if isinstance(message, list) and message[:2] == [b"message", _CHANNEL]:
            self._take(message[2])
        return False

    def _take(self, keys: list[bytes] | None) -> None:
        if keys is None:
            self._fail("the server flushed a database")
            return
        with self._lock:
            if len(self._keys) < self._max_keys:
                self._keys.update(keys)
            else:
                self._broken = self._broken or f"more than {self._max_keys} keys changed"

    def _testimony(self, *, reset: bool) -> Testimony:
        with self._lock:
            if self._broken:
                return Testimony(None, self._broken)
            said = Testimony(frozenset(self._keys), streams=self._streams)
            if reset:
                self._keys, self._streams = set(), False
        return said

    def take(self) -> Testimony:
        """What was written since it started or since the last ``take`` (the witness keeps listening). A key
        compared equal after this call and named by no later ``take`` nor ``seal`` was written on neither
        side after the comparison."""
        try:
            with RespConn(self.endpoint, timeout=_SEAL_SECONDS) as conn:
                self._sample(conn)
        except FerryError as exc:
            return Testimony(None, f"its counters could not be read ({exc.message})")
        return self._testimony(reset=True)

    def seal(self) -> Testimony:
        """What was written since it started (or the last ``take``), up to now; call once writes stopped.
        Closes it."""
        try:
            return self._seal()
        finally:
            self.close()

    def _seal(self) -> Testimony:
        if self._tracker is None:
            return Testimony(None, "it did not start")
        # The listener stops first: one thread at a time on a connection (TLS allows no other way).
        self._stop.set()
        self._thread.join(timeout=_SEAL_SECONDS)
        if self._thread.is_alive():
            return Testimony(None, "its listener did not stop")
        try:
            tracking = self._tracker.call("CLIENT", "TRACKINGINFO")
            self._sample(self._tracker)
            self._listener.send(b"*1\r\n$4\r\nPING\r\n")
            deadline = time.monotonic() + _SEAL_SECONDS
            while not self._receive(self._listener.poll(0.5)):
                if time.monotonic() > deadline:
                    return Testimony(None, "its connection did not answer")
        except FerryError as exc:
            return Testimony(None, f"its connection was lost ({exc.message})")
        fields = dict(zip(tracking[::2], tracking[1::2], strict=False))
        flags = set(fields.get(b"flags", []))
        if (
            not {b"on", b"bcast"} <= flags
            or b"broken_redirect" in flags
            or fields.get(b"redirect") != self._listener_id
        ):
            return Testimony(None, "key tracking was switched off or redirected")
        return self._testimony(reset=False)

    def close(self) -> None:
        """Stop listening (safe to call twice); closing the tracking connection ends the tracking."""
        self._stop.set()
        thread = getattr(self, "_thread", None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._listener.close()
        if self._tracker is not None:
            self._tracker.close()


def start_witness(endpoint: RedisEndpoint) -> ChangeWitness | str:
    """A witness on *endpoint*, or the one-line reason the server gives none."""
    try:
        return ChangeWitness(endpoint)
    except (FerryError, hiredis.ReplyError) as exc:
        return f"{endpoint.side}: no key tracking ({exc.message if isinstance(exc, FerryError) else exc})"
