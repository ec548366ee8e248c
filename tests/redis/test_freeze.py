"""The source Redis's pause: a write it held is refused, not run, when the pause is lifted for the follow back
(the app has moved away: acknowledged there, nobody would ever read it); ferry's own held writes go through."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from migration.redis.connection import RespConn
from migration.redis.freeze import pause_writes, resume_writes
from migration.redis.url import parse_redis_url
from migration.rehearse.redisserver import RedisServer, running_redis


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with running_redis() as started:
        yield started


def _held(server: RedisServer, count: int) -> None:
    deadline = time.monotonic() + 10
    while sum("flags=b" in line for line in redis.Redis.from_url(server.url()).execute_command("CLIENT", "LIST")
              .decode().splitlines()) < count:  # fmt: skip
        assert time.monotonic() < deadline, "the writes were never held"
        time.sleep(0.02)


def test_a_write_held_by_the_pause_is_refused_when_the_follow_back_lifts_it(server: RedisServer) -> None:
    pause_writes(server.url())
    outcomes: dict[str, object] = {}

    def app_write() -> None:
        try:  # redis-py's default client: it sends a write again on a new connection when its own is cut
            # An app's client whose name merely begins like ferry's is the app's all the same.
            outcomes["app"] = redis.Redis.from_url(server.url(), client_name="ferry-shop").set("app:held", "1")
        except redis.ConnectionError as exc:
            outcomes["app"] = exc

    def ferry_write() -> None:
        with RespConn(parse_redis_url(server.url(), "target")) as conn:
            outcomes["ferry"] = conn.call("SET", "ferry:held", "1")

    threads = [threading.Thread(target=app_write), threading.Thread(target=ferry_write)]
    for thread in threads:
        thread.start()
    _held(server, 2)
    assert resume_writes(server.url(), refuse_held=True) >= 1  # once, and again for each of its retries
    for thread in threads:
        thread.join(10)
    assert isinstance(outcomes["app"], redis.ConnectionError)  # never acknowledged
    cache = redis.Redis.from_url(server.url())
    assert cache.get("app:held") is None
    assert cache.get("ferry:held") == b"1"  # the follow back's own write went through


def test_a_plain_resume_lets_the_held_writes_run(server: RedisServer) -> None:
    pause_writes(server.url())
    thread = threading.Thread(target=lambda: redis.Redis.from_url(server.url()).set("app:held", "1"))
    thread.start()
    _held(server, 1)
    assert resume_writes(server.url()) == 0
    thread.join(10)
    assert redis.Redis.from_url(server.url()).get("app:held") == b"1"
