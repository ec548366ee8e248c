"""``ferry redis copy``: every database of the source onto the target, with ordinary commands.

scan mode: SCAN feeds batches to several connection pairs, each pipelining DUMP+PTTL on
the source and RESTORE … REPLACE ABSTTL on the target. ``live``: keyspace notifications,
subscribed before the scan, are followed until stopped. ``replicaof``: the target
replicates the source and is promoted when stopped (self-managed targets only).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migration.crashpoints import crashpoint
from migration.errors import FerryError, TargetNotEmptyError
from migration.files import replace_file
from migration.progress import ProgressSink
from migration.redis.batch import BatchResult, CopySettings, copy_keys
from migration.redis.connection import RespConn
from migration.redis.elements import remove_leftovers
from migration.redis.identity import refuse_same_server
from migration.redis.info import keyspace, version
from migration.redis.live import FlushWatch, Lag, LiveTail, require_notifications
from migration.redis.replica import replicate
from migration.redis.url import RedisEndpoint, parse_redis_pair

__all__ = ["RedisCopyOptions", "RedisCopyResult", "copy_redis"]

_DONE = object()


@dataclass(frozen=True)
class RedisCopyOptions:
    """Everything ``ferry redis copy`` takes.

    :param jobs: connection pairs copying in parallel.
    :param batch: keys per SCAN call and per pipeline.
    :param live: follow changes after the scan until stopped (or *live_seconds*).
    :param merge: copy into a non-empty target, replacing keys of the same name.
    :param flush_target: empty the target first.
    :param tls_skip_verify: accept any TLS certificate (Heroku's are self-signed).
    :param status_file: where the live lag is written as JSON every second.
    """

    source_url: str
    target_url: str
    jobs: int = 8
    batch: int = 1000
    live: bool = False
    live_seconds: float | None = None
    replicaof: bool = False
    merge: bool = False
    #: Scan every key first; ``False`` (with *live*): the sides are equal already, only what changes is copied.
    scan: bool = True
    flush_target: bool = False
    tls_skip_verify: bool = False
    max_restore_bytes: int = 256 << 20
    status_file: Path | None = None


@dataclass
class RedisCopyResult:
    """What ``copy_redis`` did; ``to_json()`` is the ``--json`` summary."""

    source: str
    target: str
    mode: str
    databases: dict[int, int] = field(default_factory=dict)
    keys: BatchResult = field(default_factory=BatchResult)
    live_events: int = 0
    live_copied: int = 0
    live_deleted: int = 0
    final_lag: Lag = field(default_factory=lambda: Lag(0, 0.0))
    seconds: float = 0.0
    scan_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "mode": self.mode,
            "databases": {str(db): n for db, n in sorted(self.databases.items())},
            "keys_copied": self.keys.copied,
            "keys_vanished": self.keys.vanished,
            "keys_by_elements": self.keys.by_elements,
            "payload_bytes": self.keys.payload_bytes,
            "live": {
                "events": self.live_events,
                "copied": self.live_copied,
                "deleted": self.live_deleted,
                "queued": self.final_lag.queued,
                "seconds_behind": round(self.final_lag.seconds_behind, 3),
            },
            "seconds": round(self.seconds, 3),
            "scan_seconds": round(self.scan_seconds, 3),
        }


class _Pairs:
    """One source and one target connection per worker thread, reselected per database."""

    def __init__(self, source: RedisEndpoint, target: RedisEndpoint) -> None:
        self.source, self.target = source, target
        self._local = threading.local()
        self._all: list[RespConn] = []
        self._lock = threading.Lock()

    def get(self, db: int) -> tuple[RespConn, RespConn]:
        pair: tuple[RespConn, RespConn] | None = getattr(self._local, "pair", None)
        if pair is None:
            pair = (RespConn(self.source), RespConn(self.target))
            self._local.pair = pair
            with self._lock:
                self._all += list(pair)
        pair[0].select(db)
        pair[1].select(db)
        return pair

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()


def _check_target(target_conn: RespConn, options: RedisCopyOptions) -> None:
    existing = keyspace(target_conn)
    if not existing:
        return
    if options.merge:
        for db in existing:
            target_conn.select(db)
            remove_leftovers(target_conn)
        target_conn.select(0)
        return
    if options.flush_target:
        target_conn.call("FLUSHALL")
        return
    summary = ", ".join(f"db{db}: {n} keys" for db, n in sorted(existing.items()))
    raise TargetNotEmptyError(
        f"target is not empty ({summary}); pass --flush-target to empty it or --merge to copy over it",
        side="target",
    )


def _scan(
    options: RedisCopyOptions,
    pairs: _Pairs,
    scanner: RespConn,
    databases: dict[int, int],
    settings: CopySettings,
    progress: ProgressSink,
    should_stop: Callable[[], bool],
) -> BatchResult:
    total = BatchResult()
    work: queue.Queue[Any] = queue.Queue(maxsize=options.jobs * 2)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            item = work.get()
            if item is _DONE:
                return
            if errors:
                continue
            db, keys = item
            try:
                src, dst = pairs.get(db)
                result = copy_keys(src, dst, keys, settings)
            except BaseException as exc:  # handed to the scanning thread, which raises it
                errors.append(exc)
                continue
            with lock:
                total.add(result)
            progress.advance("keys", len(keys), len(keys))

    with ThreadPoolExecutor(options.jobs, thread_name_prefix="ferry-redis") as pool:
        for _ in range(options.jobs):
            pool.submit(worker)
        try:
            for db in sorted(databases):
                scanner.select(db)
                cursor = b"0"
                while not errors:
                    if should_stop():
                        # Stopped before the scan ended: the target holds part of the keys only.
                        raise KeyboardInterrupt
                    cursor, keys = scanner.call("SCAN", cursor, "COUNT", options.batch)
                    if keys:
                        work.put((db, list(keys)))
                    if cursor == b"0":
                        break
        finally:
            for _ in range(options.jobs):
                work.put(_DONE)
    if errors:
        raise errors[0]
    return total


def _write_status(path: Path | None, lag: Lag, phase: str) -> None:
    if path is None:
        return
    data = {"phase": phase, "queued": lag.queued, "seconds_behind": round(lag.seconds_behind, 3),
            "consistent": lag.consistent, "at": time.time()}  # fmt: skip
    replace_file(path, json.dumps(data))


def follow(
    tail: LiveTail,
    pairs: _Pairs,
    settings: CopySettings,
    result: RedisCopyResult,
    progress: ProgressSink,
    should_stop: Callable[[], bool],
    status_file: Path | None,
    batch: int,
    flushes: FlushWatch,
) -> None:
    """Copy queued keys again until *should_stop*; then stop listening and drain what is queued."""
    last_report = 0.0
    stopping = False
    while True:
        if tail.error is not None:
            raise tail.error
        flushes.check()
        if not stopping and should_stop():
            # Stop listening first: with writes still arriving the queue would never empty.
            stopping = True
            tail.stop()
        taken = tail.take(batch)
        for db, keys in taken.items():
            src, dst = pairs.get(db)
            done = copy_keys(src, dst, keys, settings, delete_missing=True)
            tail.done(db, keys)
            crashpoint("redis-live-batch")
            result.live_copied += done.copied
            result.live_deleted += done.deleted
        lag = tail.lag()
        now = time.monotonic()
        if now - last_report >= 1.0:
            last_report = now
            _write_status(status_file, lag, "live")
            progress.message(f"live: {tail.events} events, lag {lag.queued} keys, {lag.seconds_behind:.1f} s behind")
        if stopping and lag.consistent:
            flushes.check(every=0)  # the last word before "consistent"
            return
        if not taken:
            time.sleep(0.05)


def copy_redis(
    options: RedisCopyOptions, progress: ProgressSink, should_stop: Callable[[], bool] = lambda: False
) -> RedisCopyResult:
    """Copy every database of the source onto the target.

    :param should_stop: polled by the live tail and ``replicaof``; true ends them.
    :raises FerryError: on any failure; the source is only read.
    """
    started = time.monotonic()
    source, target = parse_redis_pair(options.source_url, options.target_url, tls_skip_verify=options.tls_skip_verify)
    if options.tls_skip_verify:
        progress.message("WARNING: TLS certificates are NOT verified (--tls-skip-verify)")
    mode = "replicaof" if options.replicaof else ("live" if options.live else "scan")
    result = RedisCopyResult(source.display, target.display, mode)
    with RespConn(source) as src_control, RespConn(target) as dst_control:
        src_version, dst_version = version(src_control), version(dst_control)
        settings = CopySettings(
            restore_compatible=src_version[:2] <= dst_version[:2], max_restore_bytes=options.max_restore_bytes
        )
        if not settings.restore_compatible:
            progress.message(
                f"source Redis {'.'.join(map(str, src_version))} is newer than the target "
                f"{'.'.join(map(str, dst_version))}: copying element by element"
            )
        refuse_same_server(src_control, dst_control, target)
        _check_target(dst_control, options)
        result.databases = keyspace(src_control)
        if options.replicaof:
            replicate(
                source, dst_control, progress, should_stop, options.live_seconds,
                lambda behind, phase: _write_status(options.status_file, Lag(behind, 0.0), phase),
            )  # fmt: skip
            result.databases = keyspace(dst_control)
            result.seconds = time.monotonic() - started
            return result
        tail: LiveTail | None = None
        if options.live:
            warning = require_notifications(src_control)
            if warning:
                progress.message(f"warning: {warning}")
            flushes = FlushWatch(source)
            if not flushes.available:
                progress.message(
                    "warning: INFO commandstats refused: a FLUSHDB or SWAPDB on the source would go unseen"
                )
            tail = LiveTail(source)
        pairs = _Pairs(source, target)
        try:
            progress.phase("scan")
            progress.set_total(sum(result.databases.values()))
            progress.start_item("keys", "keys", sum(result.databases.values()), sum(result.databases.values()))
            if options.scan or tail is None:
                result.keys = _scan(options, pairs, src_control, result.databases, settings, progress, should_stop)
            result.scan_seconds = time.monotonic() - started
            progress.finish_item(
                "keys", f"scanned {result.keys.copied} keys ({result.keys.vanished} vanished) in "
                f"{result.scan_seconds:.1f} s"
            )  # fmt: skip
            if tail is not None:
                progress.phase("live")
                deadline = None if options.live_seconds is None else time.monotonic() + options.live_seconds
                try:
                    follow(
                        tail, pairs, settings, result, progress,
                        lambda: should_stop() or (deadline is not None and time.monotonic() >= deadline),
                        options.status_file, options.batch, flushes,
                    )  # fmt: skip
                except FerryError:
                    # Whoever waits on the status file must not read an old "consistent" from a copy that died.
                    _write_status(options.status_file, Lag(tail.lag().queued + 1, 0.0), "failed")
                    raise
                result.live_events = tail.events
                result.final_lag = tail.lag()
                _write_status(options.status_file, result.final_lag, "stopped")
        finally:
            if tail is not None:
                tail.stop()
            pairs.close()
    result.seconds = time.monotonic() - started
    return result
