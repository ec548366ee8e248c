"""The world a ``ferry run`` test runs in: the fake Heroku, real PostgreSQL and Redis, a stack file.

Its fixtures (``world``, ``redis_servers``, ``smoke_server``) are a plugin of the suite's
(``tests/conftest.py``), so every runbook test file shares them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from migration.rehearse.redisserver import RedisServer, running_redis
from tests.conftest import Database
from tests.helpers import Run, ferry
from tests.support.fake_heroku import FakeHeroku, running_fake_heroku

__all__ = [
    "CUTOVER",
    "PG_ADDON",
    "REDIS_ADDON",
    "ROOT",
    "World",
    "redis_servers",
    "smoke_server",
    "stack_file",
    "world",
]

ROOT = Path(__file__).resolve().parents[2]
PG_ADDON, REDIS_ADDON = "postgresql-curly-12345", "redis-round-67890"


class _Smoke(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 500)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture(scope="module")
def smoke_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Smoke)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def redis_servers() -> Iterator[tuple[RedisServer, RedisServer]]:
    with running_redis(password="src-pw-1") as source, running_redis(password="dst-pw-2") as target:
        yield source, target


@dataclass
class World:
    fake: FakeHeroku
    root: Path
    source_db: Database
    target_db: Database
    source_redis: RedisServer
    target_redis: RedisServer
    env: dict[str, str]

    def ferry(self, command: str, *args: str) -> Run:
        return ferry(command, "--stack", "test", "--root", str(self.root), *args, env=self.env)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        command = [
            sys.executable,
            "-m",
            "migration",
            "run",
            "--stack",
            "test",
            "--root",
            str(self.root),
            "--yes",
            *args,
        ]
        return subprocess.Popen(command, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def state(self) -> dict[str, Any]:
        path = self.root / ".ferry" / "test" / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def writes(self) -> list[str]:
        """The fake's successful writes, in order, in words."""
        described = []
        for method, path, body in self.fake.calls():
            if path.endswith("/config-vars"):
                described.append(
                    "config " + " ".join(f"{k}={'unset' if v is None else 'set'}" for k, v in sorted(body.items()))
                )
            elif path.endswith("/formation"):
                updates = sorted(body["updates"], key=lambda update: update["type"])
                described.append("scale " + " ".join(f"{u['type']}={u['quantity']}" for u in updates))
            elif method == "PATCH":
                described.append(f"maintenance {'on' if body['maintenance'] else 'off'}")
            elif method == "POST":
                described.append(f"attach {body['name']}")
            else:
                described.append("detach")
        return described


def stack_file(root: Path, smoke: str, **migration: Any) -> None:
    document = yaml.safe_load((ROOT / "Pulumi.ci.yaml").read_text())
    config = document["config"]
    config["ferry:heroku"] = {"app": "shop", "databaseAddon": PG_ADDON, "redisAddon": REDIS_ADDON}
    # The app runs in a Private Space peered with the stack's network (its servers are all local here).
    config.pop("ferry:reach")
    config["ferry:network"]["peering"] = {"kind": "heroku-space", "space": "shop-space", "peerCidrs": ["127.0.0.0/8"]}
    config["ferry:cache"] = {"nodeType": "cache.t4g.micro", "replicas": 0}
    config["ferry:migration"] = {
        "postgres": True,
        "redis": True,
        "s3": False,
        "jobs": 2,
        "drainSeconds": 0,
        "smokeUrls": [f"{smoke}/health"],
        **migration,
    }
    (root / "Pulumi.test.yaml").write_text(yaml.safe_dump(document))


@pytest.fixture
def world(
    tmp_path: Path,
    source_db: Database,
    target_db: Database,
    redis_servers: tuple[RedisServer, RedisServer],
    smoke_server: str,
) -> Iterator[World]:
    source_redis, target_redis = redis_servers
    for server in redis_servers:
        # A run an earlier test left switched keeps its old Redis paused (until a rollback it never ran).
        redis.Redis(port=server.port, password=server.password).execute_command("CLIENT", "UNPAUSE")
        redis.Redis(port=server.port, password=server.password).flushall()
    source_db.execute("CREATE TABLE orders (id bigint PRIMARY KEY, note text)")
    source_db.execute("INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 5000) g")
    cache = redis.Redis(port=source_redis.port, password=source_redis.password)
    cache.set("session:1", "alice", ex=3600)
    cache.hset("cart:1", mapping={"sku": "42", "qty": "2"})
    stack_file(tmp_path, smoke_server)
    with running_fake_heroku() as (fake, api_url):
        fake.add_app("shop", config={"RAILS_ENV": "production"}, formation={"web": 2, "worker": 3, "clock": 1},
                     space="shop-space")  # fmt: skip
        fake.add_addon("shop", PG_ADDON, "heroku-postgresql", source_db.url, attach_as="DATABASE")
        fake.add_addon("shop", REDIS_ADDON, "heroku-redis", source_redis.url(), attach_as="REDIS")
        env = {
            **os.environ,
            "HEROKU_API_KEY": fake.token,
            "HEROKU_API_URL": api_url,
            "FERRY_TARGET_URL": target_db.url,
            "FERRY_TARGET_REDIS_URL": target_redis.url(),
            "PATH": os.environ["PATH"],
        }
        world = World(fake, tmp_path, source_db, target_db, source_redis, target_redis, env)
        try:
            yield world
        finally:
            # A run stopped before final-sync leaves its live copies running, on purpose, and a switched run
            # its follow back (until `ferry finish`): stop them all.
            for section in world.state().get("stores", {}).values():
                for worker in ("follower", "back_follower"):
                    pid = section.get(worker, {}).get("pid")
                    if pid:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
        assert fake.violations == []


CUTOVER = [
    "attach HEROKU_POSTGRES_DB",  # the rollback aliases, while the app is live
    "attach HEROKU_REDIS_OLD",
    "maintenance on",
    "scale clock=0 worker=0",
    "detach",  # inside the freeze: the detaches, and the variables' release right after them
    "detach",
    "config DATABASE_URL=set REDIS_URL=set",
    "scale clock=1 worker=3",
    "maintenance off",
]
