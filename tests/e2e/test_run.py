"""``ferry run`` / ``ferry rollback`` against the fake Heroku, real PostgreSQL and Redis targets."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import yaml

from migration.redis.connection import RespConn
from migration.redis.url import parse_redis_url
from migration.rehearse.redisserver import running_redis
from tests.helpers import assert_one_line_error, ferry
from tests.support.world import CUTOVER, World, stack_file


def test_run_freezes_copies_verifies_and_switches_in_order(world: World) -> None:
    run = world.ferry("run", "--yes", "--json")
    assert run.code == 0, run.output
    phases = {p["name"]: p for p in run.json["phases"]}
    assert list(phases) == [
        "preflight", "provision", "copy", "alias", "catch-up", "freeze", "final-sync", "verify",
        "switch", "unfreeze", "after-switch", "follow-back", "smoke", "settle", "record", "cleanup",
    ]  # fmt: skip
    assert phases["after-switch"]["status"] == "skipped"  # no store follows after the switch: S3 does not move
    assert phases["provision"]["status"] == "skipped"
    assert phases["follow-back"]["status"] == "skipped"  # no capture: nothing follows the new stores back
    skipped = ("provision", "after-switch", "follow-back", "settle")  # settle: targets given as URLs
    assert all(p["status"] == "done" for name, p in phases.items() if name not in skipped)
    assert "5000 rows" in phases["final-sync"]["detail"]
    assert world.writes() == CUTOVER
    assert world.target_db.scalar("SELECT count(*) FROM orders") == 5000
    target_cache = redis.Redis(port=world.target_redis.port, password=world.target_redis.password)
    assert target_cache.hgetall("cart:1") == {b"sku": b"42", b"qty": b"2"}
    assert 0 < target_cache.ttl("session:1") <= 3600
    config = world.fake.apps["shop"].config
    assert config["DATABASE_URL"] == world.target_db.url and config["REDIS_URL"] == world.target_redis.url()
    assert config["HEROKU_POSTGRES_DB_URL"] == world.source_db.url
    record = json.loads((world.root / ".ferry" / "test" / "record.json").read_text())
    assert record["verify"]["postgres"]["identical"] is True and record["verify"]["redis"]["identical"] is True
    for secret in (
        world.source_redis.password,
        world.target_redis.password,
        world.fake.token,
        world.source_db.cluster.password,
    ):
        assert secret not in run.output
        assert secret not in (world.root / ".ferry" / "test" / "state.json").read_text()
        assert secret not in json.dumps(record)

    again = world.ferry("run", "--yes", "--json")  # everything done: nothing repeats
    assert again.code == 0 and world.writes() == CUTOVER
    verified_again = world.ferry("run", "--yes", "--from", "verify", "--until", "verify")
    assert verified_again.code == 0, verified_again.output
    assert world.state()["phases"]["verify"]["attempts"] == 2 and world.state()["phases"]["freeze"]["attempts"] == 1
    assert world.writes() == CUTOVER

    back = world.ferry("rollback", "--discard-writes-since-switch", "--json")
    assert back.code == 0, back.output
    assert world.writes()[len(CUTOVER) :] == [
        "config DATABASE_URL=unset REDIS_URL=unset",
        "attach DATABASE",
        "attach REDIS",
    ]
    config = world.fake.apps["shop"].config
    assert config["DATABASE_URL"] == world.source_db.url and config["REDIS_URL"] == world.source_redis.url()
    assert back.json["rolled_back"] is True
    assert_one_line_error(world.ferry("run", "--yes"), "was rolled back")


def test_redis_scan_copy_starts_no_worker_and_copies_every_key_inside_the_freeze(world: World) -> None:
    """``redisCopy: scan``: nothing follows Redis while live; the freeze copies it whole, keys written just
    before the freeze included."""
    stack_file(world.root, "http://127.0.0.1:9", redisCopy="scan", smokeUrls=[])
    assert world.ferry("run", "--yes", "--until", "catch-up").code == 0
    assert world.state()["stores"]["redis"]["follower"]["pid"] is None
    target_cache = redis.Redis(port=world.target_redis.port, password=world.target_redis.password)
    assert target_cache.dbsize() == 0
    redis.Redis(port=world.source_redis.port, password=world.source_redis.password).set("late", "1")
    finished = world.ferry("run", "--yes", "--json")
    assert finished.code == 0, finished.output
    phases = {p["name"]: p for p in finished.json["phases"]}
    assert "redis: copied inside the freeze" in phases["copy"]["detail"]
    assert "redis: copied 3 keys inside the freeze" in phases["final-sync"]["detail"]
    assert target_cache.get("late") == b"1" and target_cache.hgetall("cart:1") == {b"sku": b"42", b"qty": b"2"}
    assert world.fake.apps["shop"].config["REDIS_URL"] == world.target_redis.url()


def test_redis_replicaof_replicates_while_live_and_is_promoted_caught_up_inside_the_freeze(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", redisCopy="replicaof", smokeUrls=[])
    assert world.ferry("run", "--yes", "--until", "catch-up").code == 0
    target_cache = redis.Redis(port=world.target_redis.port, password=world.target_redis.password)
    assert target_cache.info("replication")["role"] == "slave"
    source_cache = redis.Redis(port=world.source_redis.port, password=world.source_redis.password)
    source_cache.mset({f"late:{i}": i for i in range(2000)})  # just before the freeze: in flight as it begins
    finished = world.ferry("run", "--yes", "--json")
    assert finished.code == 0, finished.output
    phases = {p["name"]: p for p in finished.json["phases"]}
    assert "the replica caught up and was promoted" in phases["final-sync"]["detail"]
    assert target_cache.info("replication")["role"] == "master"
    assert target_cache.get("late:1999") == b"1999" and target_cache.hgetall("cart:1") == {b"sku": b"42", b"qty": b"2"}
    assert world.state()["stores"]["redis"]["follower"]["pid"] is None
    assert world.source_redis.password not in (world.root / ".ferry" / "test" / "redis-live.log").read_text()


def test_a_killed_replica_worker_leaves_a_target_promoted_and_copied_whole_inside_the_freeze(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", redisCopy="replicaof", smokeUrls=[])
    assert world.ferry("run", "--yes", "--until", "catch-up").code == 0
    os.kill(world.state()["stores"]["redis"]["follower"]["pid"], signal.SIGKILL)
    target_cache = redis.Redis(port=world.target_redis.port, password=world.target_redis.password)
    assert target_cache.info("replication")["role"] == "slave"  # killed: nobody promoted it
    finished = world.ferry("run", "--yes", "--json")
    assert finished.code == 0, finished.output
    phases = {p["name"]: p for p in finished.json["phases"]}
    assert "redis: copied 2 keys inside the freeze" in phases["final-sync"]["detail"]
    assert target_cache.info("replication")["role"] == "master"
    assert target_cache.hgetall("cart:1") == {b"sku": b"42", b"qty": b"2"}
    assert target_cache.config_get("masterauth")["masterauth"] == ""  # the source's password is not left there


def test_a_rollback_after_a_killed_replica_worker_and_a_changed_stack_file_lets_the_target_go(
    world: World,
) -> None:
    stack_file(world.root, "http://127.0.0.1:9", redisCopy="replicaof", smokeUrls=[])
    assert world.ferry("run", "--yes", "--until", "freeze").code == 0
    os.kill(world.state()["stores"]["redis"]["follower"]["pid"], signal.SIGKILL)
    stack_file(world.root, "http://127.0.0.1:9", redisCopy="live", smokeUrls=[])  # changed: the run refuses it
    assert world.ferry("run", "--yes").code != 0
    rolled = world.ferry("rollback")
    assert rolled.code == 0, rolled.output  # the way the run began is undone, whatever the file says now
    target_cache = redis.Redis(port=world.target_redis.port, password=world.target_redis.password)
    assert target_cache.info("replication")["role"] == "master"
    assert target_cache.config_get("masterauth")["masterauth"] == ""
    assert world.fake.apps["shop"].maintenance is False


def test_changing_how_redis_moves_halfway_is_refused_until_put_back(world: World) -> None:
    """A live copy started by ``redisCopy: live`` would go on writing into the target after a scan copy:
    the way a store moves is kept from the copy on."""
    assert world.ferry("run", "--yes", "--until", "catch-up").code == 0
    follower = world.state()["stores"]["redis"]["follower"]["pid"]
    stack_file(world.root, "http://127.0.0.1:9", redisCopy="scan", smokeUrls=[])
    refused = world.ferry("run", "--yes")
    assert_one_line_error(refused, "migration.redisCopy changed since this run began copying redis", "LiveCopy then")
    assert world.state()["phases"]["freeze"]["status"] == "failed" and not world.state()["frozen"]
    assert "maintenance on" not in world.writes()  # refused before the freeze did anything
    os.kill(follower, 0)  # still following, untouched
    stack_file(world.root, "http://127.0.0.1:9", redisCopy="live", smokeUrls=[])
    finished = world.ferry("run", "--yes")
    assert finished.code == 0, finished.output
    assert world.state()["stores"]["redis"]["follower"]["pid"] is None


def test_redis_moved_from_an_app_without_its_url_stops_at_preflight(world: World) -> None:
    world.fake.apps["shop"].config.pop("REDIS_URL")
    refused = world.ferry("run", "--yes")
    assert_one_line_error(refused, "migration.redis is on but the app has no REDIS_URL", "set redis: false")
    assert world.writes() == []


def test_a_target_app_url_without_a_target_url_is_refused_before_anything(world: World) -> None:
    env = {k: v for k, v in world.env.items() if k != "FERRY_TARGET_URL"}
    refused = ferry("run", "--stack", "test", "--root", str(world.root), "--yes",
                    "--target-app-url", world.target_db.url, env=env)  # fmt: skip
    assert_one_line_error(refused, "--target-app-url needs --target-url")
    assert world.writes() == []


@pytest.mark.parametrize(
    "section",
    [
        {"postgres": {"lag_at_freeze": 5}},
        {"postgres": {"deferred_ranges": [["orders"]]}},
        {"postgres": {"witness": {"bogus": 1}}},
        {"postgres": {"marker": "x"}},
        {"redis": {"follower": {"pid": "abc"}}},
        {"redis": 5},
    ],
)
def test_a_state_section_of_the_wrong_shape_is_one_line_before_any_phase(world: World, section: dict[str, Any]) -> None:
    path = world.root / ".ferry" / "test" / "state.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"stack": "test", "phases": {}, "stores": section}))
    try:
        refused = world.ferry("run", "--yes")
        assert_one_line_error(refused, "start the run anew")
        assert "section is not one ferry wrote" in refused.stderr or "not a ferry run state file" in refused.stderr
        assert world.writes() == [] and json.loads(path.read_text())["phases"] == {}
    finally:
        path.unlink()  # the world's own teardown reads the state file


def test_rollback_after_freeze_unfreezes_and_restores_the_formation(world: World) -> None:
    stopped = world.ferry("run", "--yes", "--until", "verify")
    assert stopped.code == 0, stopped.output
    assert world.writes() == CUTOVER[:4]
    back = world.ferry("rollback")
    assert back.code == 0, back.output
    assert world.writes()[4:] == ["scale clock=1 worker=3", "maintenance off"]  # nothing detached: nothing to attach
    assert world.fake.apps["shop"].config["DATABASE_URL"] == world.source_db.url
    assert world.fake.apps["shop"].formation == {"web": 2, "worker": 3, "clock": 1}


def test_nothing_to_roll_back_before_the_freeze(world: World) -> None:
    asked = world.ferry("run")  # no --yes and no terminal: stops before the first phase users would notice
    assert_one_line_error(asked, "alias: attach the old database under the rollback alias", "pass --yes")
    assert {name: p["status"] for name, p in world.state()["phases"].items()} == {
        "preflight": "done",
        "provision": "skipped",
        "copy": "done",
    }
    assert_one_line_error(world.ferry("rollback"), "nothing to roll back")
    assert world.writes() == []


def test_a_crash_in_the_middle_resumes_where_it_stopped(world: World) -> None:
    held = threading.Event()
    world.fake.hold[("POST", r"^/addon-attachments$")] = held
    first = world.popen()
    deadline = time.monotonic() + 120
    while world.state().get("phases", {}).get("alias", {}).get("status") != "running":
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    held.set()  # the request in flight still lands, as it could on Heroku
    resumed = world.ferry("run", "--yes", "--json")
    assert resumed.code == 0, resumed.output
    state = world.state()["phases"]
    assert state["alias"]["attempts"] == 2
    assert all(state[name]["attempts"] == 1 for name in ("preflight", "copy", "freeze", "final-sync", "verify"))
    assert world.writes() == CUTOVER
    assert world.target_db.scalar("SELECT count(*) FROM orders") == 5000


def test_a_second_run_on_the_same_stack_is_refused(world: World) -> None:
    held = threading.Event()
    world.fake.hold[("GET", r"/config-vars$")] = held
    first = world.popen()
    deadline = time.monotonic() + 60
    while not (world.root / ".ferry" / "test" / "lock").exists() or not world.state():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second = world.ferry("run", "--yes")
    assert_one_line_error(second, "another ferry run or rollback holds stack 'test'", f"pid {first.pid}")
    held.set()
    first.kill()
    first.communicate()


def test_failed_smoke_rolls_back_when_configured(world: World, smoke_server: str) -> None:
    stack_file(world.root, smoke_server, smokeUrls=[f"{smoke_server}/broken"], rollbackOnSmokeFailure=True)
    failed = world.ferry("run", "--yes")
    assert_one_line_error(failed, "phase smoke failed", "/broken: HTTP 500", "rolled back to the old database")
    assert world.writes()[: len(CUTOVER)] == CUTOVER
    assert world.writes()[len(CUTOVER) :] == [
        "config DATABASE_URL=unset REDIS_URL=unset",
        "attach DATABASE",
        "attach REDIS",
    ]


def test_read_only_freeze_keeps_reads_and_stops_writes(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", freeze="read-only", smokeUrls=[])
    stopped = world.ferry("run", "--yes", "--until", "freeze")
    assert stopped.code == 0, stopped.output
    assert world.writes() == CUTOVER[:2]  # the aliases while live; no maintenance mode, no scaling
    with pytest.raises(Exception, match="read-only transaction"):
        world.source_db.execute("INSERT INTO orders VALUES (9999, 'late')")
    assert world.source_db.scalar("SELECT count(*) FROM orders") == 5000
    # Redis writes are held too (reads go on): a write times out instead of landing unseen.
    cache = redis.Redis(port=world.source_redis.port, password=world.source_redis.password, socket_timeout=0.5)
    assert cache.get("session:1") == b"alice"
    with pytest.raises(redis.exceptions.TimeoutError):
        cache.set("written:during:freeze", "lost?")
    assert world.ferry("rollback").code == 0
    world.source_db.execute("INSERT INTO orders VALUES (9999, 'after rollback')")
    cache = redis.Redis(port=world.source_redis.port, password=world.source_redis.password, socket_timeout=2)
    assert cache.set("after:rollback", "1")


def test_read_only_freeze_leaves_the_old_stores_closed_after_the_switch(world: World) -> None:
    """A dyno still on the old URLs after the switch must not write where nobody reads any more."""
    stack_file(world.root, "http://127.0.0.1:9", freeze="read-only", smokeUrls=[])
    done = world.ferry("run", "--yes")
    assert done.code == 0, done.output
    with pytest.raises(Exception, match="read-only transaction"):
        world.source_db.execute("INSERT INTO orders VALUES (9999, 'late')")
    cache = redis.Redis(port=world.source_redis.port, password=world.source_redis.password, socket_timeout=0.5)
    with pytest.raises(redis.exceptions.TimeoutError):
        cache.set("written:after:switch", "lost?")
    unfreeze = world.state()["phases"]["unfreeze"]["detail"]
    assert "old stores stay read-only" in unfreeze
    assert world.ferry("rollback", "--discard-writes-since-switch").code == 0
    world.source_db.execute("INSERT INTO orders VALUES (9999, 'after rollback')")


def test_moving_s3_without_the_apps_bucket_variables_is_refused_before_anything_moves(world: World) -> None:
    document = yaml.safe_load((world.root / "Pulumi.test.yaml").read_text())
    document["config"]["ferry:migration"]["s3"] = True
    del document["config"]["ferry:storage"]["buckets"][0]["configVars"]
    (world.root / "Pulumi.test.yaml").write_text(yaml.safe_dump(document))
    refused = world.ferry("run", "--yes")
    assert_one_line_error(
        refused, "Pulumi.test.yaml", "migration.s3 moves bucket uploads", "configVars", "bucketsByConfig: false"
    )
    assert world.writes() == [] and not (world.root / ".ferry" / "test" / "state.json").exists()
    document["config"]["ferry:storage"]["bucketsByConfig"] = False  # the app finds its buckets otherwise
    (world.root / "Pulumi.test.yaml").write_text(yaml.safe_dump(document))
    assert "configVars" not in world.ferry("run", "--yes", "--until", "preflight").output


def test_bad_stack_file_and_missing_pulumi_are_one_line_errors(world: World) -> None:
    (world.root / "Pulumi.test.yaml").write_text(
        (world.root / "Pulumi.test.yaml").read_text().replace("instanceClass", "instanceKlass")
    )
    assert_one_line_error(world.ferry("run", "--yes"), "Pulumi.test.yaml: ferry:database.instanceClass: Field required")
    stack_file(world.root, "http://127.0.0.1:9")
    env = {**world.env, "PATH": "/usr/bin:/bin"}
    env.pop("FERRY_TARGET_URL")
    no_pulumi = ferry("run", "--stack", "test", "--root", str(world.root), "--yes", env=env)
    assert_one_line_error(no_pulumi, "phase provision failed", "the Pulumi CLI is not installed", "--target-url")
    assert (
        json.loads((world.root / ".ferry" / "test" / "state.json").read_text())["phases"]["preflight"]["status"]
        == "done"
    )
    assert world.writes() == []


def test_a_crash_inside_the_final_copy_resumes_it(world: World) -> None:
    world.source_db.execute("CREATE TABLE events (id bigint PRIMARY KEY, payload text)")
    world.source_db.execute("INSERT INTO events SELECT g, repeat('x', 200) FROM generate_series(1, 1500000) g")
    first = world.popen("--jobs", "2")
    deadline = time.monotonic() + 120
    while not (world.state().get("stores", {}).get("postgres", {}).get("copy_started") and world.target_db.execute(
        "SELECT 1 FROM pg_namespace WHERE nspname = '_ferry'"
    )):  # fmt: skip
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    resumed = world.ferry("run", "--yes", "--json")
    assert resumed.code == 0, resumed.output
    phases = world.state()["phases"]
    assert phases["final-sync"]["attempts"] == 2 and phases["freeze"]["attempts"] == 1
    assert "(resumed)" in phases["final-sync"]["detail"]  # the parts done before the kill were kept
    assert world.target_db.scalar("SELECT count(*) FROM events") == 1500000
    assert world.target_db.scalar("SELECT count(*) FROM orders") == 5000
    assert world.writes() == CUTOVER


def test_tls_skip_verify_accepts_the_sources_self_signed_certificate(world: World) -> None:
    with running_redis(password="tls-src-pw", tls=True) as heroku_redis:
        with RespConn(parse_redis_url(heroku_redis.url() + "?ssl_cert_reqs=none", "source")) as conn:
            conn.call("SET", "session:tls", "bob")
        addon = next(addon for addon in world.fake.addons.values() if addon.service == "heroku-redis")
        addon.url = world.fake.apps["shop"].config["REDIS_URL"] = heroku_redis.url()
        refused = world.ferry("run", "--yes", "--until", "preflight")
        assert_one_line_error(refused, "phase preflight failed", "source:", "TLS")
        accepted = world.ferry("run", "--yes", "--tls-skip-verify", "--until", "final-sync")
        assert accepted.code == 0, accepted.output
    target = redis.Redis(port=world.target_redis.port, password=world.target_redis.password)
    assert target.get("session:tls") == b"bob"
    assert "tls-src-pw" not in accepted.output + refused.output


def test_only_the_source_redis_url_skips_the_certificate_check() -> None:
    from migration.runbook.stores.redis import _without_certificate_check

    assert _without_certificate_check("rediss://:pw@h:6380") == "rediss://:pw@h:6380?ssl_cert_reqs=none"
    assert _without_certificate_check("rediss://:pw@h:6380/0?x=1") == "rediss://:pw@h:6380/0?x=1&ssl_cert_reqs=none"
    assert _without_certificate_check("redis://:pw@h:6379") == "redis://:pw@h:6379"
    assert parse_redis_url(_without_certificate_check("rediss://:pw@h:6380"), "source").verify_tls is False


def test_stores_side_by_side_all_finish_before_an_error_is_raised() -> None:
    from migration.errors import ToolError
    from migration.runbook.parallel import side_by_side

    finished: list[str] = []

    def slow() -> str:
        time.sleep(0.3)
        finished.append("slow")
        return "slow done"

    def failing() -> str:
        raise ToolError("redis live copy stopped")

    with pytest.raises(ToolError, match="redis live copy stopped"):
        side_by_side({"postgres": slow, "redis": failing})
    assert finished == ["slow"]  # nothing is still writing when the phase fails
    started = time.monotonic()
    assert side_by_side({"a": slow, "b": slow}) == {"a": "slow done", "b": "slow done"}
    assert time.monotonic() - started < 0.55  # at the same time, not one after the other


def test_a_non_empty_target_stops_the_run_before_the_freeze(world: World) -> None:
    redis.Redis(port=world.target_redis.port, password=world.target_redis.password).set("left:over", "1")
    refused = world.ferry("run", "--yes")
    assert_one_line_error(refused, "phase preflight failed", "redis preflight", "not empty")
    # Starting at copy (as after provision) checks the targets there, still before the freeze.
    skipped = world.ferry("run", "--yes", "--from", "copy")
    assert_one_line_error(skipped, "phase copy failed", "redis preflight", "not empty")
    assert "freeze" not in world.state()["phases"] and world.writes() == []


def test_differences_found_by_verify_stop_the_run_before_the_switch(world: World) -> None:
    assert world.ferry("run", "--yes", "--until", "final-sync").code == 0
    world.target_db.execute("UPDATE orders SET note = 'changed on the target' WHERE id = 42")
    stopped = world.ferry("run", "--yes")
    assert_one_line_error(
        stopped, "phase verify failed", "verify found 1 differences", "nothing was switched",
        "the app was unfrozen", code=1,
    )  # fmt: skip
    # Nothing switched, so the app is writable again at once, on its old stores.
    assert world.writes() == [*CUTOVER[:4], "scale clock=1 worker=3", "maintenance off"]
    # The next run freezes and copies again before it verifies: what the app wrote in between arrives.
    assert "freeze" not in world.state()["phases"] and "final-sync" not in world.state()["phases"]
    world.source_db.execute("INSERT INTO orders VALUES (9999, 'written after the unfreeze')")
    cache = redis.Redis(port=world.source_redis.port, password=world.source_redis.password)
    cache.delete("cart:1")
    cache.set("session:2", "bob")
    again = world.ferry("run", "--yes")
    assert again.code == 0, again.output
    assert world.target_db.scalar("SELECT note FROM orders WHERE id = 42") == "order 42"
    assert world.target_db.scalar("SELECT note FROM orders WHERE id = 9999") == "written after the unfreeze"
    target_cache = redis.Redis(port=world.target_redis.port, password=world.target_redis.password)
    assert target_cache.exists("cart:1") == 0 and target_cache.get("session:2") == b"bob"


def test_a_state_file_of_the_earlier_shape_still_loads(tmp_path: Path) -> None:
    """Written before stores had sections: the run goes on from it instead of starting over."""
    from migration.runbook.state import RunState, StoreState
    from migration.runbook.stores.postgres import PostgresState

    old = {
        "stack": "test", "phases": {"copy": {"status": "done", "started_at": 1.0}}, "formation": {"web": 1},
        "freeze_mode": None, "frozen": False, "rolled_back": False, "postgres_copy_started": True,
        "redis_live_pid": 4242, "facts": {"targets_checked": True, "verify": {"postgres": {"identical": True}}},
    }  # fmt: skip
    path = tmp_path / "state.json"
    path.write_text(json.dumps(old))
    state = RunState.load(path, "test")
    assert state.done("copy") and state.targets_checked
    assert state.section("postgres", PostgresState).copy_started
    assert state.section("redis", StoreState).follower.pid == 4242
    assert state.verify == {"postgres": {"identical": True}}
    path.write_text('{"stack": "test", "phases": "nonsense"}')
    with pytest.raises(Exception, match="move it away to start the run anew"):
        RunState.load(path, "test")


def test_capture_copies_while_live_and_the_fence_only_drains(world: World) -> None:
    """migration.capture with freeze: fence: copied and followed before the freeze, drained inside it (and,
    with no follow back, capture taken off the source at the end)."""
    stack_file(world.root, "http://127.0.0.1:9", capture=True, freeze="fence", reverse=False, smokeUrls=[])
    live = world.ferry("run", "--yes", "--until", "copy")
    assert live.code == 0, live.output
    assert "following the change log" in world.state()["phases"]["copy"]["detail"]
    assert world.target_db.scalar("SELECT count(*) FROM orders") == 5000  # copied while the app is live
    # The follower killed between two runs: catch-up starts it again, and the log kept every change.
    follower = world.state()["stores"]["postgres"]["follower"]["pid"]
    os.kill(follower, signal.SIGKILL)
    while _alive(follower):
        time.sleep(0.05)
    world.source_db.execute("UPDATE orders SET note = 'written while live' WHERE id <= 100")
    world.source_db.execute("INSERT INTO orders VALUES (5001, 'new while live')")
    # A transaction open across the fence: ended after its grace, its write never acknowledged anywhere.
    across = psycopg.connect(world.source_db.url)
    across.execute("UPDATE orders SET note = 'open across the fence' WHERE id = 4000")
    rest = world.ferry("run", "--yes", "--json")
    assert rest.code == 0, rest.output
    with pytest.raises(psycopg.OperationalError):
        across.commit()
    across.close()
    phases = {p["name"]: p for p in rest.json["phases"]}
    assert "verified live: 5001 rows" in phases["catch-up"]["detail"]
    assert "fenced for every role (1 transactions open across it ended)" in phases["freeze"]["detail"]
    # Inside the freeze only what changed since the live pass was compared row by row.
    verified = world.state()["verify"]["postgres"]
    assert verified["details"]["mode"] == "changes" and verified["checked"]["rows"] < 5001
    for db in (world.source_db, world.target_db):
        assert db.scalar("SELECT note FROM orders WHERE id = 4000") == "order 4000"
    assert "changes drained" in phases["final-sync"]["detail"]
    assert "maintenance on" not in world.writes()  # the fence, not maintenance mode
    assert world.target_db.scalar("SELECT count(*) FROM orders WHERE note = 'written while live'") == 100
    assert world.target_db.scalar("SELECT note FROM orders WHERE id = 5001") == "new while live"
    # After the run capture is gone from the source, and the run's record holds a verified copy.
    assert "change capture removed" in phases["cleanup"]["detail"]
    assert world.source_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_capture'") == 0
    assert world.source_db.scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'ferry_capture%'") == 0
    # The follow's record on the target goes too: the app's new database holds nothing of ferry's.
    assert world.target_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE '\\_ferry%'") == 0
    # The fence went with capture, but the old database stays closed to a dyno still on its URL ...
    with (
        psycopg.connect(world.source_db.url, autocommit=True) as stale,
        pytest.raises(psycopg.errors.ReadOnlySqlTransaction),
    ):
        stale.execute("INSERT INTO orders VALUES (7000, 'a stale dyno')")
    # ... until rollback opens it again.
    assert world.ferry("rollback", "--discard-writes-since-switch").code == 0
    world.source_db.execute("INSERT INTO orders VALUES (7000, 'after the rollback')")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")


def test_ddl_on_the_source_while_following_stops_the_run_before_the_freeze(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", capture=True, smokeUrls=[])
    assert world.ferry("run", "--yes", "--until", "copy").code == 0
    world.source_db.execute("ALTER TABLE orders ADD COLUMN extra int")
    stopped = world.ferry("run", "--yes")
    assert_one_line_error(
        stopped,
        "phase catch-up failed",
        "column public.orders.extra differs",
        "changed on the source since the copy",
        code=2,
    )
    assert "freeze" not in world.state()["phases"]  # the app was never frozen
    assert world.writes() == CUTOVER[:2]  # only the aliases, attached while live


def test_the_fence_is_refused_where_large_objects_would_escape_it(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", capture=True, smokeUrls=[])  # freeze: fence by default
    world.source_db.execute("SELECT lo_from_bytea(0, 'an attachment')")
    refused = world.ferry("run", "--yes")
    assert_one_line_error(refused, "phase preflight failed", "1 large objects", "use migration.freeze: read-only")
    assert world.writes() == []


@pytest.mark.parametrize(
    "phase",
    ["copy", "alias", "catch-up", "freeze", "final-sync", "verify", "switch", "unfreeze", "follow-back", "record",
     "cleanup"],
)  # fmt: skip
def test_a_capture_run_killed_after_any_phase_resumes_to_an_identical_target(world: World, phase: str) -> None:
    """kill -9 of ``ferry run`` as each phase finished its work but before it was recorded."""
    stack_file(world.root, "http://127.0.0.1:9", capture=True, smokeUrls=[])
    world.source_db.execute("UPDATE orders SET note = 'before the run' WHERE id <= 10")
    killed = ferry("run", "--stack", "test", "--root", str(world.root), "--yes",
                   env={**world.env, "FERRY_CRASH_AT": f"phase-{phase}"})  # fmt: skip
    assert killed.code == -9, killed.output
    assert world.state()["phases"][phase]["status"] == "running"
    if world.state().get("frozen") is False:
        world.source_db.execute("UPDATE orders SET note = 'between the runs' WHERE id = 11")
    resumed = world.ferry("run", "--yes")
    assert resumed.code == 0, resumed.output
    assert world.state()["phases"][phase]["attempts"] == 2
    for db in (world.source_db, world.target_db):
        assert db.scalar("SELECT count(*) FROM orders WHERE note = 'before the run'") == 10
    assert world.target_db.scalar("SELECT note FROM orders WHERE id = 11") == world.source_db.scalar(
        "SELECT note FROM orders WHERE id = 11"
    )
    assert world.state()["verify"]["postgres"]["identical"] is True
    follower = world.state()["stores"]["postgres"]["follower"]["pid"]
    assert follower is None
    # Followed back once, whatever the phase the crash hit: a write on the target reaches the old database.
    world.target_db.execute("UPDATE orders SET note = 'on the target' WHERE id = 12")
    deadline = time.monotonic() + 30
    while world.source_db.scalar("SELECT note FROM orders WHERE id = 12") != "on the target":
        assert time.monotonic() < deadline, "not followed back"
        time.sleep(0.1)
    assert world.ferry("finish").code == 0
    for db in (world.source_db, world.target_db):
        assert db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_capture'") == 0


@pytest.mark.parametrize("freeze", ["maintenance", "read-only"])
@pytest.mark.parametrize(
    "phase", ["copy", "freeze", "final-sync", "verify", "alias", "switch", "unfreeze", "record", "cleanup"]
)
def test_a_run_killed_after_any_phase_resumes_and_switches_once(world: World, phase: str, freeze: str) -> None:
    """kill -9 of ``ferry run`` (no capture) as each phase finished its work but before it was recorded."""
    stack_file(world.root, "http://127.0.0.1:9", freeze=freeze, smokeUrls=[])
    killed = ferry("run", "--stack", "test", "--root", str(world.root), "--yes",
                   env={**world.env, "FERRY_CRASH_AT": f"phase-{phase}"})  # fmt: skip
    assert killed.code == -9, killed.output
    resumed = world.ferry("run", "--yes")
    assert resumed.code == 0, resumed.output
    assert world.state()["phases"][phase]["attempts"] == 2
    assert world.state()["verify"]["postgres"]["identical"] is True
    assert world.target_db.scalar("SELECT count(*) FROM orders") == 5000
    app = world.fake.apps["shop"]
    assert app.config["DATABASE_URL"].endswith(f"/{world.target_db.name}")
    assert app.maintenance is False and app.formation == {"web": 2, "worker": 3, "clock": 1}
    # Each change the app sees happened once, however often its phase ran.
    assert [w for w in world.writes() if w.startswith("config")] == ["config DATABASE_URL=set REDIS_URL=set"]


def test_a_rollback_stands_when_capture_cannot_come_off_yet(world: World) -> None:
    """A table locked by another session: the app is back on the old database all the same, and the
    one line says how to take capture off later."""
    stack_file(world.root, "http://127.0.0.1:9", capture=True, smokeUrls=[])
    assert world.ferry("run", "--yes", "--until", "switch").code == 0
    locker = psycopg.connect(world.source_db.url)
    locker.execute("LOCK TABLE orders IN SHARE MODE")  # as a long transaction would
    try:
        rolled = world.ferry("rollback", "--discard-writes-since-switch", "--json")
        assert rolled.code == 0, rolled.output
        detail = world.state()["phases"]["rollback"]["detail"]
        assert "change capture is still on the source" in detail and "ferry pg capture remove" in detail
    finally:
        locker.close()
    world.source_db.execute("INSERT INTO orders VALUES (8000, 'written after the rollback')")  # open again
    assert ferry("pg", "capture", "remove", "--source", world.source_db.url).code == 0
    assert world.source_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_capture'") == 0
