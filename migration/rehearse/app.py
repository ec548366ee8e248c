"""The rehearsal's app: keeps writing and reading through ``DATABASE_URL`` and ``REDIS_URL``.

Run as ``python -m migration.rehearse.app PLATFORM_DIR LOG PORT``. Like a dyno it takes its
config from the platform (``config.env``, re-read when it changes, as a release restarts
dynos), is unavailable while the ``maintenance`` flag is set, and runs its worker only while
``formation.json`` gives it one. Every write the database acknowledged is logged
(``ok KIND ID TIME``), every refused or failed attempt too (``down``/``fail``), so the
rehearsal can count lost writes and measure the window writes were unavailable. It serves
``/health`` on PORT (503 in maintenance) for the smoke phase.
"""

from __future__ import annotations

import contextlib
import itertools
import signal
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


class _Stores:
    """The app's connections, opened again whenever its config changes."""

    def __init__(self) -> None:
        self.config: dict[str, str] = {}
        self.db: psycopg.Connection[Any] | None = None
        self.cache: RespConn | None = None

    def use(self, config: dict[str, str]) -> None:
        if config == self.config and self.db is not None:
            return
        self.close()
        self.config = config
        self.db = psycopg.connect(config["DATABASE_URL"], autocommit=True, connect_timeout=5)
        if "REDIS_URL" in config:
            self.cache = RespConn(parse_redis_url(config["REDIS_URL"], "target"), timeout=5)

    def close(self) -> None:
        for closing in (self.db, self.cache):
            if closing is not None:
                with contextlib.suppress(Exception):
                    closing.close()
        self.db = self.cache = None

    def write(self, kind: str, write_id: int) -> None:
        assert self.db is not None
        self.db.execute("INSERT INTO app_writes (id, kind) VALUES (%s, %s)", (write_id, kind))
        if self.cache is not None:
            self.cache.call("SET", f"write:{write_id}", kind)

    def read(self) -> None:
        assert self.db is not None
        self.db.execute("SELECT count(*) FROM orders WHERE customer_id = 1").fetchone()


def _log(out: TextIO, *fields: object) -> None:
    out.write(" ".join(str(f) for f in fields) + "\n")
    out.flush()


def main(platform_dir: Path, log_path: Path, port: int) -> None:
    platform = LocalPlatform(platform_dir)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503 if platform.maintenance_flag.exists() else 200)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stores, ids = _Stores(), itertools.count(1)
    with open(log_path, "a") as out:
        _log(out, "start", f"{time.time():.6f}")
        while not stopping.is_set():
            kinds = ["web"] if not platform.maintenance_flag.exists() else []
            if platform.formation().get("worker", 0) > 0:
                kinds.append("worker")
            if "web" not in kinds:
                _log(out, "down", "web", f"{time.time():.6f}", "maintenance")
            for kind in kinds:
                write_id = next(ids)
                try:
                    stores.use(platform.config_vars())
                    stores.write(kind, write_id)
                    stores.read()
                    _log(out, "ok", kind, write_id, f"{time.time():.6f}")
                except Exception as exc:  # any failure is the app's experience to report, not to crash on
                    _log(out, "fail", kind, f"{time.time():.6f}", type(exc).__name__)
                    stores.close()
            time.sleep(_TICK_SECONDS)
        _log(out, "stop", f"{time.time():.6f}")
    stores.close()
    server.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
