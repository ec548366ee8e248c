"""The rehearsal's app: keeps writing and reading PostgreSQL, Redis and its bucket through its config vars.

Run as ``python -m migration.rehearse.app PLATFORM_DIR LOG PORT BOOT_SECONDS``. Like a dyno it takes its
config from the platform (``config.env``) and restarts on every release (``release`` raised): it stops at
once (a request blocked on a store ends), boots for BOOT_SECONDS, then writes the release it runs to
``running``; booted without ``DATABASE_URL`` it crashes, as a Rails app does, and serves nothing until
the next release. It serves nothing while the ``maintenance`` flag is set, and runs its worker only
while ``formation.json`` gives it one.

Requests run side by side, as on a dyno with several threads, each with its own connections: one writes
rows, one keys, one uploads through ``S3_BUCKET`` with ``AWS_ACCESS_KEY_ID`` (the S3 endpoint from
``FERRY_REHEARSAL_S3_ENDPOINT``) and overwrites one ``avatars/current`` object, reading each upload
back; one reads the database and the cache. Every acknowledged write is logged (``ack STORE ID TIME KIND
BUCKET``),
every failed one too (``fail STORE TIME KIND ERROR``), reads as ``read ok|fail TIME``, so the rehearsal
counts lost writes per store and measures the windows writes and reads were unavailable. It serves
``/health`` on PORT (503 in maintenance or while down) for the smoke phase.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

import psycopg

from migration.platform.local import LocalPlatform
from migration.redis.connection import RespConn
from migration.redis.url import parse_redis_url

_TICK_SECONDS = 0.01
#: More databases the app writes to besides ``DATABASE_URL`` (a rehearsal of several moves): their variables,
#: comma-separated; each one's writes are logged as store ``pg:VARIABLE``.
MORE_DATABASES_ENV = "FERRY_REHEARSAL_MORE_DATABASES"


def more_databases() -> list[str]:
    return [var for var in os.environ.get(MORE_DATABASES_ENV, "").split(",") if var]


_UPLOAD_TICK_SECONDS = 0.05
AVATAR = "avatars/current"


def upload_key(write_id: int) -> str:
    return f"uploads/w-{write_id}"


class _Dyno:
    """The app's process as the platform runs it: the release it runs, booting, up or crashed."""

    def __init__(self, platform: LocalPlatform, out: TextIO, boot_seconds: float) -> None:
        self.platform, self.out, self.boot_seconds = platform, out, boot_seconds
        self.release, self.generation = -1, 0
        self.config: dict[str, str] | None = None  # set while up
        self.booted_at = 0.0
        self.crashed = False
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sockets: set[socket.socket] = set()

    def log(self, *fields: object) -> None:
        with self._lock:
            self.out.write(" ".join(str(f) for f in fields) + "\n")
            self.out.flush()

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def holding(self, sock: socket.socket, held: bool) -> None:
        with self._lock:
            (self._sockets.add if held else self._sockets.discard)(sock)

    def manage(self) -> None:
        """One look at the platform: a new release stops the app at once and boots it anew (again, if
        another comes while it boots); requests meanwhile fail, as a router finds no dyno up."""
        latest = self.platform.release()
        if latest != self.release:
            with self._lock:
                self.config, self.crashed = None, False
                self.generation += 1
                for sock in self._sockets:  # what a request waits on (a paused Redis) ends with the dyno
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
            self.log("restart", f"{time.time():.6f}", latest)
            self.release, self.booted_at = latest, time.monotonic() + self.boot_seconds
            return
        if self.config is not None or self.crashed or time.monotonic() < self.booted_at:
            return
        config = self.platform.config_vars()
        if "DATABASE_URL" in config:
            self.config = config
        else:  # a Rails app without DATABASE_URL does not boot: down until the next release
            self.crashed = True
            self.log("crash", f"{time.time():.6f}", "no DATABASE_URL")
        (self.platform.directory / "running").write_text(str(latest))


class _Connections:
    """One request thread's connections, opened for the dyno's current boot."""

    def __init__(self, dyno: _Dyno) -> None:
        self.dyno, self.generation = dyno, -1
        self.db: psycopg.Connection[Any] | None = None
        self.cache: RespConn | None = None
        self.s3: Any = None
        self.bucket: str | None = None
        self.more: dict[str, psycopg.Connection[Any]] = {}

    def current(self) -> _Connections:
        """Connected for the boot the dyno runs now. :raises ConnectionError: it is not up."""
        dyno = self.dyno
        config, generation = dyno.config, dyno.generation
        if config is None:
            self.close()
            raise ConnectionError("no dyno up")
        if generation != self.generation:
            self.close()
            self.generation = generation
            self.db = psycopg.connect(config["DATABASE_URL"], autocommit=True, connect_timeout=5)
            if "REDIS_URL" in config:
                self.cache = RespConn(parse_redis_url(config["REDIS_URL"], "target"), timeout=5)
                dyno.holding(self.cache.sock, True)
            self.bucket = config.get("S3_BUCKET")
            if self.bucket:
                self.s3 = _s3_client(config)
            for var in more_databases():
                if var in config:  # between a detach and the next variable set it is not: its writes fail
                    self.more[var] = psycopg.connect(config[var], autocommit=True, connect_timeout=5)
        return self

    def close(self) -> None:
        if self.cache is not None:
            self.dyno.holding(self.cache.sock, False)
        for closing in (self.db, self.cache, *self.more.values()):
            if closing is not None:
                with contextlib.suppress(Exception):
                    closing.close()
        self.db = self.cache = self.s3 = None
        self.more = {}
        self.generation = -1


def _s3_client(config: dict[str, str]) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=os.environ.get("FERRY_REHEARSAL_S3_ENDPOINT"), region_name=config.get("AWS_REGION"),
        aws_access_key_id=config.get("AWS_ACCESS_KEY_ID"), aws_secret_access_key=config.get("AWS_SECRET_ACCESS_KEY"),
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=5),
    )  # fmt: skip


def _write(dyno: _Dyno, connections: _Connections, store: str, kind: str) -> None:
    write_id = dyno.next_id()
    try:
        live = connections.current()
        if store == "postgres":
            assert live.db is not None
            live.db.execute("INSERT INTO app_writes (id, kind) VALUES (%s, %s)", (write_id, kind))
        elif store.startswith("pg:"):
            if store[3:] not in live.more:
                raise ConnectionError(f"no {store[3:]}")
            live.more[store[3:]].execute("INSERT INTO app_writes (id, kind) VALUES (%s, %s)", (write_id, kind))
        elif store == "redis":
            if live.cache is None:
                return
            live.cache.call("SET", f"write:{write_id}", kind)
        else:
            if live.s3 is None:
                return
            body = str(write_id).encode()
            live.s3.put_object(Bucket=live.bucket, Key=upload_key(write_id), Body=body)
            live.s3.put_object(Bucket=live.bucket, Key=AVATAR, Body=body)
    except Exception as exc:  # any failure is the app's experience to report, not to crash on
        _after_failure(connections, exc)
        dyno.log("fail", store, f"{time.time():.6f}", kind, type(exc).__name__)
        return
    dyno.log("ack", store, write_id, f"{time.time():.6f}", kind, live.bucket if store == "s3" else "-")
    if store == "s3":
        _read_back(dyno, connections, write_id)


def _after_failure(connections: _Connections, exc: Exception) -> None:
    """A statement refused (the fence, a read-only role) leaves the connection usable, as an app's pool keeps
    it; anything else (a broken socket, a boot) drops them all."""
    if not (isinstance(exc, psycopg.Error) and not isinstance(exc, psycopg.OperationalError)):
        connections.close()


def _read_back(dyno: _Dyno, connections: _Connections, write_id: int) -> None:
    """The page that shows an upload reads it back from the bucket it went to."""
    try:
        live = connections.current()
        live.s3.get_object(Bucket=live.bucket, Key=upload_key(write_id))["Body"].read()
    except Exception as exc:
        connections.close()
        dyno.log("read", "fail", f"{time.time():.6f}", type(exc).__name__)
        return
    dyno.log("read", "ok", f"{time.time():.6f}")


def _read(dyno: _Dyno, connections: _Connections) -> None:
    try:
        live = connections.current()
        assert live.db is not None
        live.db.execute("SELECT count(*) FROM orders WHERE customer_id = 1").fetchone()
        if live.cache is not None:
            live.cache.call("GET", "leaderboard:name")
    except Exception as exc:
        connections.close()
        dyno.log("read", "fail", f"{time.time():.6f}", type(exc).__name__)
        return
    dyno.log("read", "ok", f"{time.time():.6f}")


def _requests(dyno: _Dyno, stopping: threading.Event, what: str) -> None:
    """One request thread: a store's writes, the reads, or the worker process's writes."""
    connections, platform = _Connections(dyno), dyno.platform
    # Uploads are rarer than row and key writes in a web app (and moto's S3 is slow to serve).
    tick = _UPLOAD_TICK_SECONDS if what == "s3" else _TICK_SECONDS
    while not stopping.wait(tick):
        if what == "worker":
            if platform.formation().get("worker", 0) > 0:
                _write(dyno, connections, "postgres", "worker")
        elif platform.maintenance_flag.exists():
            if what == "read":
                dyno.log("down", "web", f"{time.time():.6f}", "maintenance")
        elif what == "read":
            _read(dyno, connections)
        else:
            _write(dyno, connections, what, "web")
    connections.close()


def main(platform_dir: Path, log_path: Path, port: int, boot_seconds: float) -> None:
    platform = LocalPlatform(platform_dir)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    with open(log_path, "a") as out:
        dyno = _Dyno(platform, out, boot_seconds=0.0)  # the first boot is before the rehearsal starts its clock
        dyno.manage()
        dyno.manage()
        dyno.boot_seconds = boot_seconds

        class Health(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(503 if platform.maintenance_flag.exists() or dyno.config is None else 200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", port), Health)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        dyno.log("start", f"{time.time():.6f}")
        threads = [
            threading.Thread(target=_requests, args=(dyno, stopping, what), name=what)
            for what in ("postgres", "redis", "s3", "read", "worker", *(f"pg:{var}" for var in more_databases()))
        ]
        for thread in threads:
            thread.start()
        while not stopping.wait(_TICK_SECONDS):
            dyno.manage()
        for thread in threads:
            thread.join(timeout=10)
        dyno.log("stop", f"{time.time():.6f}")
        server.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
