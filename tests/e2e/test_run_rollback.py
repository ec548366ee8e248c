"""``ferry rollback`` after the switch: what the app wrote to the new stores is said, and left only on request."""

from __future__ import annotations

import json

from tests.helpers import assert_one_line_error
from tests.support.world import World, stack_file


def test_a_rollback_after_the_switch_says_what_it_would_leave_and_needs_the_flag(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", capture=True, reverse=False, smokeUrls=[])
    done = world.ferry("run", "--yes")
    assert done.code == 0, done.output
    assert world.state()["stores"]["postgres"]["writes_at_switch"] is not None
    # The app on the target: three rows written, one of them twice.
    world.target_db.execute("INSERT INTO orders VALUES (9001, 'on the target'), (9002, 'on the target')")
    world.target_db.execute("UPDATE orders SET note = 'changed' WHERE id = 9001")
    cutover = world.writes()
    refused = world.ferry("rollback")
    assert_one_line_error(refused, "the app has run on the new stores since the switch", "migration.reverse is off")
    assert "postgres: 3 writes" in refused.output and "--discard-writes-since-switch" in refused.output
    assert world.writes() == cutover  # refused before anything changed
    assert "rollback" not in world.state()["phases"]
    # A state that says the target had fewer than no writes at the switch is refused, not counted from.
    state_file = world.root / ".ferry" / "test" / "state.json"
    kept = state_file.read_text()
    edited = json.loads(kept)
    edited["stores"]["postgres"]["writes_at_switch"] = -5
    state_file.write_text(json.dumps(edited))
    assert_one_line_error(world.ferry("rollback"), "writes_at_switch", "no count of writes")
    state_file.write_text(kept)
    back = world.ferry("rollback", "--discard-writes-since-switch")
    assert back.code == 0, back.output
    assert world.fake.apps["shop"].config["DATABASE_URL"] == world.source_db.url
    assert world.source_db.scalar("SELECT count(*) FROM orders WHERE id > 9000") == 0  # left behind, as it said


def test_a_rollback_before_the_switch_needs_no_flag(world: World) -> None:
    stopped = world.ferry("run", "--yes", "--until", "verify")
    assert stopped.code == 0, stopped.output
    back = world.ferry("rollback")
    assert back.code == 0, back.output


def test_status_says_where_the_run_stands_and_what_the_target_took_since_the_switch(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", capture=True, smokeUrls=[])
    before = world.ferry("status", "--json")
    assert before.code == 0, before.output
    assert before.json["started"] is False and before.json["next_phase"] == "preflight"
    assert world.ferry("run", "--yes", "--until", "copy").code == 0
    following = world.ferry("status", "--json")
    assert following.json["next_phase"] == "alias" and following.json["frozen"] is False
    postgres = {s["name"]: s for s in following.json["stores"]}["postgres"]
    assert postgres["follower"] == "running" and postgres["pid"] and postgres["said"]["phase"] == "live"
    assert world.ferry("run", "--yes").code == 0
    world.target_db.execute("INSERT INTO orders VALUES (9001, 'on the target')")
    after = world.ferry("status", "--json")
    assert after.json["next_phase"] is None and after.json["switched_seconds_ago"] >= 0
    assert after.json["frozen"] is False  # the old stores stay closed; the app writes to the new ones
    stores = {s["name"]: s for s in after.json["stores"]}
    assert stores["postgres"]["follower"] == "none" and stores["postgres"]["writes_since_switch"] == 1
    text = world.ferry("status")
    assert (
        text.code == 0
        and "writing to the new stores since" in text.output
        and "1 writes since the switch" in text.output
    )
    assert world.ferry("status", "--stack", "../x").code == 2
