"""The freeze's Redis verify in proportion to the changes, and the key-tracking witness it trusts instead of
the keyspace notifications the live copy follows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from migration.progress import make_progress
from migration.redis import RedisCopyOptions, copy_redis
from migration.redis.changes import LiveRedisVerify, verify_again_live, verify_changed, verify_live
from migration.redis.url import parse_redis_url
from migration.redis.verify import verify_redis
from migration.redis.witness import ChangeWitness
from migration.rehearse.redisserver import RedisServer, running_redis


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    with running_redis() as source, running_redis(password="target-pw-77") as target:
        yield source, target


@pytest.fixture
def servers(pair: tuple[RedisServer, RedisServer]) -> Iterator[tuple[RedisServer, RedisServer]]:
    for server in pair:
        client(server).flushall()
        client(server).config_set("notify-keyspace-events", "KEA")
    yield pair
    for server in pair:
        client(server).acl_deluser("narrow")


def client(server: RedisServer, db: int = 0) -> redis.Redis:
    return redis.Redis(port=server.port, password=server.password, db=db)


def witness(server: RedisServer) -> ChangeWitness:
    return ChangeWitness(parse_redis_url(server.url(), "source"))


def copied(servers: tuple[RedisServer, RedisServer], keys: int = 300) -> None:
    """The source filled (two databases, TTLs, every shape the app uses) and copied whole."""
    source, target = servers
    for db in (0, 3):
        r = client(source, db)
        pipe = r.pipeline(transaction=False)
        for n in range(keys):
            pipe.set(f"session:{n}", f"user-{n}", ex=3600)
            pipe.hset(f"cart:{n}", mapping={"sku": f"SKU-{n}", "qty": n % 4})
        pipe.zadd("leaderboard", {f"customer:{n}": n for n in range(keys)})
        pipe.execute()
    result = copy_redis(RedisCopyOptions(source.url(), target.url(), merge=True), make_progress(quiet=True))
    assert result.keys.copied == 2 * (2 * keys + 1)


def live_pass(servers: tuple[RedisServer, RedisServer]) -> LiveRedisVerify:
    live = verify_live(servers[0].url(), servers[1].url())
    assert isinstance(live, LiveRedisVerify), live
    return live


def test_the_witness_names_every_write_whatever_made_it(servers: tuple[RedisServer, RedisServer]) -> None:
    source = servers[0]
    # Keyspace notifications off: the witness does not depend on them.
    client(source).config_set("notify-keyspace-events", "")
    seen = witness(source)
    r = client(source)
    r.set("plain", "1")
    with r.pipeline(transaction=True) as tx:
        tx.set("in:multi:a", "1").hset("in:multi:b", "f", "v").execute()
    r.eval("redis.call('SET', KEYS[1], 'x')", 1, "by:lua")
    r.set("short", "x", px=20)
    client(source, 5).set("other:db", "1")
    r.set("to:rename", "1")
    r.rename("to:rename", "renamed")
    r.expire("plain", 100)
    r.get("never:written")  # reads are not writes
    testimony = seen.seal()
    assert testimony.complete, testimony.reason
    assert testimony.keys is not None
    assert {b"plain", b"in:multi:a", b"in:multi:b", b"by:lua", b"short", b"other:db", b"to:rename", b"renamed"} <= (
        testimony.keys
    )
    assert b"never:written" not in testimony.keys


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (lambda r: r.flushdb(), "flushed"),
        (lambda r: r.swapdb(0, 1), "SWAPDB ran"),
        (lambda r: (r.pfadd("hll", "a"), r.execute_command("PFDEBUG", "TODENSE", "hll")), "PFDEBUG ran"),
        (lambda r: r.execute_command("CLIENT", "KILL", "TYPE", "pubsub"), "lost"),
        (lambda r: r.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"), "lost"),
    ],
    ids=["flushdb", "swapdb", "pfdebug", "listener-killed", "tracker-killed"],
)
def test_a_witness_that_cannot_say_says_why(servers: tuple[RedisServer, RedisServer], command, reason: str) -> None:  # type: ignore[no-untyped-def]
    source = servers[0]
    seen = witness(source)
    r = client(source)
    r.set("k", "1")
    command(r)
    testimony = seen.seal()
    assert not testimony.complete
    assert reason in testimony.reason


def test_writes_no_notification_announced_are_found_in_the_freeze(servers: tuple[RedisServer, RedisServer]) -> None:
    source, target = servers
    copied(servers)
    live = live_pass(servers)
    assert live.keys_checked == 2 * (2 * 300 + 1) and not live.kept
    # What a live copy that lost its notifications would leave: written on the source, never copied.
    client(source).set("session:7", "changed", keepttl=True)
    client(source, 3).delete("cart:9")
    client(source).set("created:after", "1")
    client(target).hset("cart:11", "qty", 99)  # and a stray write on the target
    report = verify_changed(source.url(), target.url(), live)
    found = {(d.kind, d.name) for d in report.differences}
    assert found == {
        ("value", "db0:session:7"),
        ("extra on target", "db3:cart:9"),
        ("missing on target", "db0:created:after"),
        ("value", "db0:cart:11"),
    }
    assert report.keys_checked < 20  # the freeze compared the keys written since, not all 1 200


def test_keys_differing_while_live_are_compared_again(servers: tuple[RedisServer, RedisServer]) -> None:
    source, target = servers
    copied(servers)
    client(source).set("session:1", "in flux")  # not copied yet as the live pass runs
    client(target).set("only:on:target", "1")
    live = live_pass(servers)
    assert live.kept == {b"session:1", b"only:on:target"}
    client(target).set("session:1", "in flux")  # the live copy catches up; the stray key stays
    report = verify_changed(source.url(), target.url(), live)
    assert [(d.kind, d.name) for d in report.differences] == [("extra on target", "db0:only:on:target")]


def test_an_identical_copy_verifies_in_proportion(servers: tuple[RedisServer, RedisServer]) -> None:
    source, target = servers
    copied(servers)
    live = live_pass(servers)
    client(source).set("session:3", "new")
    client(target).set("session:3", "new")
    report = verify_changed(source.url(), target.url(), live)
    assert report.identical, report.differences
    assert report.keys_checked == 2  # session:3 in both databases
    assert any("written since the live pass" in note for note in report.notes)


def test_without_a_witness_every_key_is_compared(servers: tuple[RedisServer, RedisServer]) -> None:
    source, target = servers
    copied(servers)
    # A role without CLIENT (a managed Redis may refuse tracking): no witness, the freeze compares all.
    client(source).acl_setuser("narrow", enabled=True, passwords=["+narrow-pw"], keys=["*"], channels=["*"],
                               commands=["+@all", "-client"])  # fmt: skip
    narrow = f"redis://narrow:narrow-pw@127.0.0.1:{source.port}"
    reason = verify_live(narrow, target.url())
    assert isinstance(reason, str) and "source: no key tracking" in reason
    live = live_pass(servers)
    client(source).flushdb()
    client(target).flushdb()
    client(source).set("after:flush", "1")
    report = verify_changed(source.url(), target.url(), live)
    assert [(d.kind, d.name) for d in report.differences] == [("missing on target", "db0:after:flush")]
    assert any("every key compared" in note and "flushed" in note for note in report.notes)


def test_the_last_live_pass_leaves_the_freeze_only_what_came_after_it(servers: tuple[RedisServer, RedisServer]) -> None:
    source, target = servers
    copied(servers)
    live = live_pass(servers)
    client(source).set("session:4", "copied later", keepttl=True)  # in flux as the last pass runs
    client(source).set("session:5", "copied in time", keepttl=True)
    client(target).set("session:5", "copied in time", keepttl=True)
    assert verify_again_live(source.url(), target.url(), live) == 2
    assert live.kept == {b"session:4"}
    client(target).set("session:4", "copied later", keepttl=True)
    client(source, 3).set("session:6", "never copied", keepttl=True)  # after the last pass: the seal names it
    report = verify_changed(source.url(), target.url(), live)
    assert [(d.kind, d.name) for d in report.differences] == [("value", "db3:session:6")]
    assert report.keys_checked == 2 * 2  # session:4 and session:6, in both databases


def test_a_witness_broken_before_the_last_live_pass_hands_the_freeze_every_key(
    servers: tuple[RedisServer, RedisServer],
) -> None:
    source, target = servers
    copied(servers)
    live = live_pass(servers)
    client(target).swapdb(0, 3)
    client(target).swapdb(0, 3)  # the same data again, but no key was named
    assert verify_again_live(source.url(), target.url(), live) is None
    live.close()
    live = live_pass(servers)
    client(source).execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    client(source).set("unseen", "1")
    verify_again_live(source.url(), target.url(), live)  # the listener may not know yet: the seal will
    report = verify_changed(source.url(), target.url(), live)
    assert [(d.kind, d.name) for d in report.differences] == [("missing on target", "db0:unseen")]
    assert "every key compared" in report.notes[-1] and "source: its connection was lost" in report.notes[-1]


def _stream(server: RedisServer) -> None:
    r = client(server)
    r.delete("orders")
    r.xadd("orders", {"n": 1}, id="1-0")
    r.xadd("orders", {"n": 2}, id="2-0")
    r.xgroup_create("orders", "workers", id="0")


@pytest.mark.parametrize(
    "command",
    [
        lambda r: r.xgroup_create("orders", "billing", id="0"),
        lambda r: r.xgroup_setid("orders", "workers", "1-0"),
        lambda r: r.xgroup_destroy("orders", "workers"),
        lambda r: r.xreadgroup("workers", "alice", {"orders": ">"}, count=1),
        lambda r: r.execute_command("XSETID", "orders", "5-0"),
    ],
    ids=["xgroup-create", "xgroup-setid", "xgroup-destroy", "xreadgroup", "xsetid"],
)
@pytest.mark.parametrize("side", [0, 1], ids=["source", "target"])
def test_consumer_group_commands_no_tracking_names_are_compared(  # type: ignore[no-untyped-def]
    servers: tuple[RedisServer, RedisServer], command, side: int
) -> None:
    """Redis 7.0 signals none of the consumer-group commands to tracking (nor to keyspace notifications):
    every stream is compared once one ran."""
    for server in servers:
        _stream(server)
    live = live_pass(servers)
    command(client(servers[side]))
    report = verify_changed(servers[0].url(), servers[1].url(), live)
    assert [(d.kind, d.name) for d in report.differences] == [("value", "db0:orders")]


def test_pending_entries_and_consumers_of_a_stream_are_compared(servers: tuple[RedisServer, RedisServer]) -> None:
    for server in servers:
        _stream(server)
        client(server).xreadgroup("workers", "alice", {"orders": ">"}, count=2)
    client(servers[0]).xack("orders", "workers", "1-0")
    found = verify_redis(servers[0].url(), servers[1].url())
    assert [(d.kind, d.name) for d in found.differences] == [("value", "db0:orders")]
    client(servers[1]).xack("orders", "workers", "1-0")
    assert verify_redis(servers[0].url(), servers[1].url()).identical


def test_a_reset_of_the_statistics_hiding_a_swapdb_is_seen(servers: tuple[RedisServer, RedisServer]) -> None:
    source, target = servers
    for server in servers:
        client(server, 0).set("k", "zero")
        client(server, 1).set("k", "one")
    live = live_pass(servers)
    client(source).swapdb(0, 1)
    client(source).config_resetstat()
    report = verify_changed(source.url(), target.url(), live)
    assert {(d.kind, d.name) for d in report.differences} == {("value", "db0:k"), ("value", "db1:k")}
    assert "statistics were reset" in report.notes[-1]


def test_a_full_compare_finds_a_key_only_the_target_has_beside_one_about_to_expire(
    servers: tuple[RedisServer, RedisServer],
) -> None:
    source, target = servers
    copied(servers, keys=10)
    client(source).set("leaving", "1", px=3000)  # within the TTL tolerance: not reported missing
    client(target).set("stray", "1")
    report = verify_redis(source.url(), target.url())
    assert [(d.kind, d.name) for d in report.differences] == [("extra on target", "db0:stray")]


def test_a_reset_climbed_back_over_in_one_transaction_is_seen(servers: tuple[RedisServer, RedisServer]) -> None:
    """SWAPDB, CONFIG RESETSTAT, then enough commands in the same transaction to climb back over the
    commands processed before: the reset's own statistics still say it ran."""
    source, target = servers
    for server in servers:
        client(server, 0).set("k", "zero")
        client(server, 1).set("k", "one")
    live = live_pass(servers)
    before = int(client(source).info("stats")["total_commands_processed"])
    with client(source).pipeline(transaction=True) as tx:
        tx.swapdb(0, 1).config_resetstat()
        tx.eval(f"for i = 1, {before + 1000} do redis.call('PING') end", 0)
        tx.execute()
    assert int(client(source).info("stats")["total_commands_processed"]) > before
    report = verify_changed(source.url(), target.url(), live)
    assert {(d.kind, d.name) for d in report.differences} == {("value", "db0:k"), ("value", "db1:k")}
    assert "statistics were reset" in report.notes[-1]
