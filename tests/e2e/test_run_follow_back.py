"""The follow back: from the switch until ``ferry finish``, the new stores followed into the old ones, so a
rollback after the switch loses nothing; ``finish`` leaves no trace on either side."""

from __future__ import annotations

import os
import signal
import time

import psycopg
import pytest
import redis

from migration.postgres import verify_databases
from tests.helpers import assert_one_line_error, ferry
from tests.support.world import World, stack_file

_OURS = (
    "SELECT (SELECT count(*) FROM pg_namespace WHERE nspname IN ('ferry_capture', '_ferry_follow', '_ferry')) "
    "+ (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal) + (SELECT count(*) FROM pg_proc p "
    "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname LIKE '%ferry%')"
)


def _switched(world: World, **migration: str) -> None:
    world.source_db.execute(
        "CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL UNIQUE); "
        "INSERT INTO people VALUES (1, 'a@x'), (2, 'b@x'); CREATE TABLE scratch (id int PRIMARY KEY); "
        "INSERT INTO scratch SELECT generate_series(1, 50)"
    )
    stack_file(world.root, "http://127.0.0.1:9", capture=True, smokeUrls=[], **migration)
    done = world.ferry("run", "--yes")
    assert done.code == 0, done.output
    assert world.state()["phases"]["follow-back"]["status"] == "done", done.output


def _app_writes_to_the_target(world: World) -> None:
    """What the app does on the new stores after the switch: every kind of write."""
    world.target_db.execute("INSERT INTO orders VALUES (9001, 'on the target'), (9002, 'on the target')")
    world.target_db.execute("UPDATE orders SET note = 'changed on the target' WHERE id IN (1, 9001)")
    world.target_db.execute("DELETE FROM orders WHERE id BETWEEN 10 AND 19")
    world.target_db.execute("UPDATE orders SET id = 8000 WHERE id = 20")  # a key update
    world.target_db.execute("TRUNCATE scratch")
    # Two rows swap a unique value in one transaction (each one's new value the other's old one).
    world.target_db.execute(
        "BEGIN; UPDATE people SET email = 'tmp' WHERE id = 1; UPDATE people SET email = 'a@x' WHERE id = 2; "
        "UPDATE people SET email = 'b@x' WHERE id = 1; COMMIT"
    )
    cache = redis.Redis(port=world.target_redis.port, password=world.target_redis.password)
    cache.set("session:2", "bob")
    cache.delete("session:1")
    cache.hset("cart:1", "qty", "3")


def test_a_rollback_after_the_switch_brings_every_write_back_and_the_old_database_refuses_strays(
    world: World,
) -> None:
    _switched(world)
    # A stray dyno on the old URL (the very role the follower writes as): refused by the fence.
    with (
        psycopg.connect(world.source_db.url, autocommit=True) as stray,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ferry fence"),
    ):
        stray.execute("INSERT INTO orders VALUES (7777, 'stray')")
    _app_writes_to_the_target(world)
    deadline = time.monotonic() + 30  # followed back while the app runs on the target, before any rollback
    while world.source_db.scalar("SELECT count(*) FROM orders WHERE id = 9002") == 0:
        assert time.monotonic() < deadline, "the follow back brought nothing"
        time.sleep(0.2)
    status = world.ferry("status", "--json")
    postgres = {s["name"]: s for s in status.json["stores"]}["postgres"]
    assert postgres["back"]["follower"] == "running" and postgres["back"]["said"]["phase"] == "live"
    assert postgres["back"]["log_bytes"] >= 0 and postgres["back"]["log_cap_bytes"] > 0
    # A client still on the old REDIS_URL (Redis cannot refuse it): the rollback brings the old Redis to the new one's.
    old_cache = redis.Redis(port=world.source_redis.port, password=world.source_redis.password)
    old_cache.set("stray:only-old", "x")
    back = world.ferry("rollback")
    assert back.code == 0, back.output
    state = world.state()
    assert state["rolled_back"] and state["phases"]["back:verify"]["status"] == "done"
    assert "identical" in state["phases"]["back:verify"]["detail"]
    assert world.fake.apps["shop"].config["DATABASE_URL"] == world.source_db.url
    report = verify_databases(world.target_db.url, world.source_db.url, mode="full")
    assert report.identical, [str(d) for d in report.differences]
    assert world.source_db.scalar("SELECT note FROM orders WHERE id = 9001") == "changed on the target"
    assert world.source_db.scalar("SELECT count(*) FROM orders WHERE id BETWEEN 10 AND 20") == 0
    assert world.source_db.scalar("SELECT count(*) FROM scratch") == 0
    assert world.source_db.scalar("SELECT email FROM people WHERE id = 1") == "b@x"
    assert old_cache.get("session:2") == b"bob" and old_cache.get("session:1") is None
    assert old_cache.hget("cart:1", "qty") == b"3" and old_cache.get("stray:only-old") is None
    # The app writes to its old database again; the new one stays fenced for a dyno still on its URL.
    world.source_db.execute("INSERT INTO orders VALUES (7777, 'back on the old one')")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ferry fence"):
        world.target_db.execute("INSERT INTO orders VALUES (7778, 'stray on the new one')")
    assert world.source_db.scalar(_OURS) == 0  # capture and the follow's record gone from the old database


def test_a_killed_follow_back_is_started_again_and_loses_nothing(world: World) -> None:
    _switched(world)
    pid = world.state()["stores"]["postgres"]["back_follower"]["pid"]
    os.kill(pid, signal.SIGKILL)
    _app_writes_to_the_target(world)  # nothing follows back meanwhile: the target's log keeps it
    status = world.ferry("status")
    assert "follow back stopped (`ferry run --stack test` starts it again)" in status.output, status.output
    revived = world.ferry("run", "--yes")
    assert revived.code == 0 and "postgres stopped: started again" in revived.output, revived.output
    again = world.state()["stores"]["postgres"]["back_follower"]["pid"]
    assert again and again != pid
    deadline = time.monotonic() + 30
    while world.source_db.scalar("SELECT count(*) FROM orders WHERE id = 9002") == 0:
        assert time.monotonic() < deadline, "the revived follow back brought nothing"
        time.sleep(0.2)
    os.kill(again, signal.SIGKILL)  # and killed again: the rollback starts it itself
    back = world.ferry("rollback")
    assert back.code == 0, back.output
    report = verify_databases(world.target_db.url, world.source_db.url, mode="full")
    assert report.identical, [str(d) for d in report.differences]


def test_finish_leaves_nothing_of_ferrys_and_a_rollback_after_it_needs_the_flag(world: World) -> None:
    before = world.source_db.scalar(_OURS)
    _switched(world)
    _app_writes_to_the_target(world)
    done = world.ferry("finish")
    assert done.code == 0, done.output
    state = world.state()
    assert state["finished"] and all(
        not section.get("back_follower", {}).get("pid") for section in state["stores"].values()
    )
    assert world.source_db.scalar(_OURS) == before
    assert world.target_db.scalar(_OURS) == 0
    # The old database's app role stays read-only: no dyno writes where nobody reads.
    with (
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
        psycopg.connect(world.source_db.url, autocommit=True) as stray,
    ):
        stray.execute("INSERT INTO orders VALUES (7777, 'stray')")
    old_cache = redis.Redis(port=world.source_redis.port, password=world.source_redis.password, socket_timeout=0.5)
    with pytest.raises(redis.exceptions.TimeoutError):
        old_cache.set("stray", "x")  # the old Redis's writes held again, as after a run without the follow back
    refused = world.ferry("rollback")
    assert_one_line_error(refused, "`ferry finish` ended the follow back", "--discard-writes-since-switch")
    assert "rollback" not in world.state()["phases"]
    assert world.ferry("finish").code == 0  # again: nothing to do


def test_a_follow_back_that_lost_its_capture_is_refused_without_the_flag(world: World) -> None:
    _switched(world)
    # What the follow back's log cap does on the new database: capture taken off.
    removed = ferry("pg", "capture", "remove", "--source", world.target_db.url)
    assert removed.code == 0, removed.output
    world.target_db.execute("INSERT INTO orders VALUES (9001, 'not followed back')")
    refused = world.ferry("rollback")
    assert_one_line_error(refused, "the follow back stopped", "capture is gone from the new database")
    back = world.ferry("rollback", "--discard-writes-since-switch")
    assert back.code == 0, back.output
    assert world.source_db.scalar("SELECT count(*) FROM orders WHERE id = 9001") == 0
    with psycopg.connect(world.source_db.url, autocommit=True) as app:
        app.execute("INSERT INTO orders VALUES (7777, 'the app writes to its old database again')")


@pytest.mark.parametrize(
    "phase", ["back:catch-up", "back:freeze", "back:final-sync", "back:verify", "back:switch", "back:unfreeze"]
)
def test_a_rollback_killed_after_any_phase_goes_on_and_loses_nothing(world: World, phase: str) -> None:
    """kill -9 of ``ferry rollback`` as each of its phases finished its work but before it was recorded."""
    _switched(world)
    _app_writes_to_the_target(world)
    killed = ferry("rollback", "--stack", "test", "--root", str(world.root),
                   env={**world.env, "FERRY_CRASH_AT": f"phase-{phase}"})  # fmt: skip
    assert killed.code == -9, killed.output
    assert world.state()["phases"][phase]["status"] == "running"
    if phase == "back:catch-up":  # not frozen yet: the app still writes to the target, followed back all the same
        world.target_db.execute("INSERT INTO orders VALUES (9100, 'between the two rollbacks')")
    else:  # frozen, or back on the old stores: the target refuses a stray write
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ferry fence"):
            world.target_db.execute("INSERT INTO orders VALUES (9100, 'a stray write')")
    again = world.ferry("rollback")
    assert again.code == 0, again.output
    state = world.state()
    assert state["rolled_back"] and state["phases"][phase]["attempts"] == 2
    assert world.fake.apps["shop"].config["DATABASE_URL"] == world.source_db.url
    report = verify_databases(world.target_db.url, world.source_db.url, mode="full")
    assert report.identical, [str(d) for d in report.differences]
    world.source_db.execute("INSERT INTO orders VALUES (7777, 'the app writes to its old database again')")
    old_cache = redis.Redis(port=world.source_redis.port, password=world.source_redis.password)
    assert old_cache.get("session:2") == b"bob" and old_cache.set("after", "1")


def test_ddl_on_the_target_stops_the_rollback_and_the_flag_goes_back_without_it(world: World) -> None:
    """A migration of the app's on the new database: the old one cannot take rows of a shape it does not have."""
    _switched(world)
    world.target_db.execute("ALTER TABLE orders ADD COLUMN extra int; INSERT INTO orders VALUES (9001, 'new', 1)")
    refused = world.ferry("rollback")
    assert refused.code != 0 and "--discard-writes-since-switch" in refused.output, refused.output
    assert world.fake.apps["shop"].config["DATABASE_URL"] == world.target_db.url  # still on the new stores
    world.target_db.execute("INSERT INTO orders VALUES (9002, 'the app writes on', 2)")  # and not frozen
    back = world.ferry("rollback", "--discard-writes-since-switch")
    assert back.code == 0, back.output
    assert world.fake.apps["shop"].config["DATABASE_URL"] == world.source_db.url
    world.source_db.execute("INSERT INTO orders VALUES (7777, 'the app writes to its old database again')")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ferry fence"):
        world.target_db.execute("INSERT INTO orders VALUES (7778, 'a stray on the new one', 3)")


def test_a_new_redis_without_keyspace_notifications_is_refused_before_the_freeze(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", capture=True, smokeUrls=[])
    cache = redis.Redis(port=world.target_redis.port, password=world.target_redis.password)
    cache.config_set("notify-keyspace-events", "")
    try:
        refused = world.ferry("run", "--yes")
        assert_one_line_error(refused, "phase catch-up failed", "keyspace notifications are off on the new Redis")
        assert "freeze" not in world.state()["phases"]  # the app was never frozen
    finally:
        cache.config_set("notify-keyspace-events", "KEA")


@pytest.mark.parametrize("freeze", ["read-only", "maintenance"])
def test_the_follow_back_in_the_other_freeze_modes(world: World, freeze: str) -> None:
    """read-only: ferry's role is the app's (as on Heroku), read-only by the freeze on the old database;
    maintenance: the rollback's freeze stops the processes running now, and puts back the scale set since."""
    _switched(world, freeze=freeze)
    with (
        psycopg.connect(world.source_db.url, autocommit=True) as stray,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        stray.execute("SET default_transaction_read_only = off; INSERT INTO orders VALUES (7777, 'stray')")
    _app_writes_to_the_target(world)
    app = world.fake.apps["shop"]
    app.formation |= {"worker": 6, "sidekiq": 2}  # scaled on the new stores
    back = world.ferry("rollback")
    assert back.code == 0, back.output
    report = verify_databases(world.target_db.url, world.source_db.url, mode="full")
    assert report.identical, [str(d) for d in report.differences]
    world.source_db.execute("INSERT INTO orders VALUES (7777, 'the app writes to its old database again')")
    if freeze == "maintenance":
        assert any("sidekiq=0" in w for w in world.writes()), world.writes()
        assert app.formation == {"web": 2, "worker": 6, "clock": 1, "sidekiq": 2} and app.maintenance is False


def test_in_maintenance_mode_the_old_database_is_closed_before_the_app_writes_again(world: World) -> None:
    """Maintenance mode touches no store: without the follow back's fence, a process still on the old URL could
    write there between the unfreeze and the follow back's start."""
    stack_file(world.root, "http://127.0.0.1:9", capture=True, freeze="maintenance", smokeUrls=[])
    done = world.ferry("run", "--yes", "--until", "unfreeze")
    assert done.code == 0, done.output
    assert world.fake.apps["shop"].maintenance is False  # the app writes to the new stores now
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ferry fence"):
        world.source_db.execute("INSERT INTO orders VALUES (7777, 'a process on the old release')")
    world.target_db.execute("INSERT INTO orders VALUES (9001, 'on the target')")
    rest = world.ferry("run", "--yes")
    assert rest.code == 0, rest.output
    back = world.ferry("rollback")
    assert back.code == 0, back.output
    assert world.source_db.scalar("SELECT note FROM orders WHERE id = 9001") == "on the target"
