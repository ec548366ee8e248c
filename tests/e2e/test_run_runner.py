"""``ferry run --runner local``: the data-plane phases as tasks (child processes with the ECS task's command and
environment), the control phases in the caller; killed at any moment, started again, it ends verified."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers import assert_one_line_error, ferry
from tests.support.world import World, stack_file

CAPTURE = {"capture": True, "smokeUrls": []}


def _secrets(world: World) -> list[str]:
    return [world.source_redis.password, world.target_redis.password, world.fake.token,
            world.source_db.cluster.password]  # fmt: skip


def test_a_run_with_the_local_runner_moves_the_stores_in_one_task_and_hands_the_switch_over(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", **CAPTURE)
    world.source_db.execute("UPDATE orders SET note = 'before the run' WHERE id <= 10")
    run = world.ferry("run", "--yes", "--json", "--runner", "local")
    assert run.code == 0, run.output
    phases = [p["name"] for p in run.json["phases"]]
    # alias (Pulumi's, while live) before the copy: the task from the copy to the unfreeze is one
    assert phases.index("alias") < phases.index("copy")
    assert all(p["status"] in ("done", "skipped") for p in run.json["phases"])
    # preflight, then copy..follow-back, then cleanup
    assert run.output.count("started (local)") == 3, run.output
    assert "[switch] waiting for the caller" in run.output
    state = world.state()
    assert state["verify"]["postgres"]["identical"] is True and state["awaiting"] is None
    assert state["witnessed"] == state["phases"]["freeze"]["started_at"]
    assert world.target_db.scalar("SELECT count(*) FROM orders WHERE note = 'before the run'") == 10
    assert world.fake.apps["shop"].config["DATABASE_URL"] == world.target_db.url
    logs = "".join(p.read_text() for p in (world.root / ".ferry" / "test" / "tasks").glob("*.log"))
    assert "[final-sync] done" in logs
    for secret in _secrets(world):
        assert secret not in run.output and secret not in logs
    assert not (world.root / ".ferry" / "test" / "task.json").exists()
    assert world.ferry("finish").code == 0


@pytest.mark.parametrize("phase", ["copy", "final-sync", "switch:witness", "unfreeze", "follow-back", "cleanup"])
def test_a_task_killed_at_any_phase_is_started_again_by_the_next_run(world: World, phase: str) -> None:
    """kill -9 of the task itself (its crash point) as a phase finished its work, before it was recorded."""
    stack_file(world.root, "http://127.0.0.1:9", **CAPTURE)
    step = "task-witnessed" if phase == "switch:witness" else f"phase-{phase}"
    killed = ferry("run", "--stack", "test", "--root", str(world.root), "--yes", "--runner", "local",
                   env={**world.env, "FERRY_CRASH_AT": step})  # fmt: skip
    assert_one_line_error(killed, "stopped before it ended", "`ferry run --stack test --runner local` starts it again")
    resumed = world.ferry("run", "--yes", "--runner", "local")
    assert resumed.code == 0, resumed.output
    state = world.state()
    if phase != "switch:witness":
        assert state["phases"][phase]["attempts"] == 2
    assert state["verify"]["postgres"]["identical"] is True
    assert world.target_db.scalar("SELECT count(*) FROM orders") == 5000
    assert world.fake.apps["shop"].config["DATABASE_URL"] == world.target_db.url
    assert world.ferry("finish").code == 0


def test_a_caller_killed_while_its_task_runs_waits_for_that_task_when_started_again(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", **CAPTURE)
    killed = ferry("run", "--stack", "test", "--root", str(world.root), "--yes", "--runner", "local",
                   env={**world.env, "FERRY_CRASH_AT": "task-started:2"})  # fmt: skip
    assert killed.code == -9, killed.output
    record = json.loads((world.root / ".ferry" / "test" / "task.json").read_text())
    # The task goes on without its caller, up to the switch it must be handed over.
    deadline = time.monotonic() + 120
    while world.state().get("awaiting") != "switch":
        assert time.monotonic() < deadline, world.state()
        time.sleep(0.1)
    resumed = world.ferry("run", "--yes", "--runner", "local")
    assert resumed.code == 0, resumed.output
    assert f"task {record['id']} of this run is still running: waiting for it" in resumed.output
    state = world.state()
    assert all(state["phases"][name]["attempts"] == 1 for name in ("copy", "freeze", "final-sync", "switch"))
    assert state["verify"]["postgres"]["identical"] is True
    assert world.ferry("finish").code == 0


def test_a_run_stopped_before_the_switch_leaves_the_app_frozen_for_a_rollback(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", **CAPTURE)
    stopped = world.ferry("run", "--yes", "--runner", "local", "--until", "verify")
    assert stopped.code == 0, stopped.output
    assert world.state()["frozen"] is True and "switch" not in world.state()["phases"]
    back = world.ferry("rollback", "--runner", "local", "--json")  # the stores' part as a task, as the run's
    assert back.code == 0, back.output
    assert {p["name"]: p["status"] for p in back.json["phases"]}["rollback"] == "done"  # the state read again
    assert "[rollback:release..rollback:release] task local-" in back.output
    assert "capture removed" in world.state()["phases"]["rollback"]["detail"]
    assert world.fake.apps["shop"].config["DATABASE_URL"] == world.source_db.url
    world.source_db.execute("INSERT INTO orders VALUES (9001, 'after the rollback')")
    assert world.source_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_capture'") == 0


@pytest.mark.parametrize(
    ("reach", "space", "message"),
    [
        (None, None, "reach.app private-space peers Private Space shop-space, but the app runs in the Common Runtime"),
        ({"app": "vpc", "cidrs": []}, "shop-space", "reach.app vpc says it runs in AWS, but it runs in shop-space"),
        (None, "other-space", "but the app runs in other-space"),
    ],
)
def test_preflight_refuses_a_target_the_app_could_not_reach_from_where_heroku_runs_it(
    world: World, reach: dict[str, object] | None, space: str | None, message: str
) -> None:
    import yaml

    path = world.root / "Pulumi.test.yaml"
    document = yaml.safe_load(path.read_text())
    if reach is not None:
        document["config"]["ferry:reach"] = {"app": reach["app"]}
        document["config"]["ferry:network"]["allowedCidrs"] = ["127.0.0.0/8"]
    path.write_text(yaml.safe_dump(document))
    world.fake.apps["shop"].space = space
    refused = world.ferry("run", "--yes")
    assert_one_line_error(refused, "phase preflight failed", "out of reach of app shop on stack test", message)
    assert world.writes() == []  # nothing built, attached or frozen


def test_tasks_share_the_copy_with_a_helper_task_and_end_verified(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", **CAPTURE)
    run = world.ferry("run", "--yes", "--runner", "local", "--tasks", "2", "--until", "verify")
    assert run.code == 0, run.output
    assert "[copy-helper-1] task local-" in run.output
    assert "postgres copy helper:" in run.output  # it joined the shared copy and ended by itself
    assert world.state()["verify"]["postgres"]["identical"] is True
    assert world.target_db.scalar("SELECT count(*) FROM orders") == 5000
    helper_log = next((world.root / ".ferry" / "test" / "tasks").glob("*.log"))
    assert helper_log.exists()
    for secret in _secrets(world):
        assert all(secret not in log.read_text() for log in helper_log.parent.glob("*.log"))


def test_tasks_without_a_runner_is_refused_in_one_line(world: World) -> None:
    assert_one_line_error(world.ferry("run", "--yes", "--tasks", "2"), "--tasks", "needs --runner")


def _orphan(world: World) -> dict[str, str]:
    """A caller killed while its task runs on: the task, awaiting the switch it must be handed."""
    killed = ferry("run", "--stack", "test", "--root", str(world.root), "--yes", "--runner", "local",
                   env={**world.env, "FERRY_CRASH_AT": "task-started:2"})  # fmt: skip
    assert killed.code == -9, killed.output
    deadline = time.monotonic() + 120
    while world.state().get("awaiting") != "switch":
        assert time.monotonic() < deadline, world.state()
        time.sleep(0.1)
    record: dict[str, str] = json.loads((world.root / ".ferry" / "test" / "task.json").read_text())
    return record


def _running(world: World, task_id: str) -> bool:
    from migration.runner import LocalRunner

    return LocalRunner(world.root / ".ferry" / "test" / "tasks").running(task_id)


def test_nothing_runs_beside_a_live_task_but_a_run_with_its_runner_and_a_rollback_stops_it(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", **CAPTURE)
    record = _orphan(world)
    beside = world.ferry("run", "--yes")
    assert_one_line_error(beside, f"task {record['id']} of stack test still runs (local)", "--runner local")
    status = world.ferry("status")
    assert f"task {record['id']} (local, copy..follow-back): running" in status.output
    (world.root / ".ferry" / "test" / "task.json").write_text("{not json")
    garbled = world.ferry("run", "--yes", "--runner", "local")
    assert_one_line_error(garbled, "is not one ferry wrote", f"task {record['id']} of stack test still runs")
    assert f"task {record['id']} (local, ?): running" in world.ferry("status").output
    # Nothing to finish before the switch: refused, and the task is left to go on.
    assert_one_line_error(world.ferry("finish"), "is not on the new stores")
    assert _running(world, record["id"])
    assert _running(world, record["id"])
    back = world.ferry("rollback")  # stops the task first: it would write the state beside the rollback
    assert back.code == 0, back.output
    assert f"task {record['id']} of this run still runs: stopping it first" in back.output
    assert not _running(world, record["id"])
    state = world.state()
    assert state["rolled_back"] is True and state["awaiting"] is None
    assert world.fake.apps["shop"].config["DATABASE_URL"] == world.source_db.url
    world.source_db.execute("INSERT INTO orders VALUES (9002, 'after the rollback')")


def test_a_helper_task_killed_mid_part_leaves_its_part_to_the_leader_and_the_copy_verifies(world: World) -> None:
    """--tasks 2 on a source of many parts: the leader waits for its helper, both claim parts; the helper is
    killed with its first part loaded and marked but not committed: the leader copies that part, once."""
    for n in range(8):
        world.source_db.execute(f"CREATE TABLE extra_{n} (id int PRIMARY KEY, note text)")
        world.source_db.execute(f"INSERT INTO extra_{n} SELECT g, 'row ' || g FROM generate_series(1, 2000) g")
    stack_file(world.root, "http://127.0.0.1:9", **CAPTURE)
    run = ferry("run", "--stack", "test", "--root", str(world.root), "--yes", "--runner", "local", "--tasks", "2",
                "--until", "verify", env={**world.env, "FERRY_CRASH_AT": "helper-part-loading:1"})  # fmt: skip
    assert run.code == 0, run.output
    assert "1 of 1 helpers joined the shared copy" in run.output
    status = json.loads((world.root / ".ferry" / "test" / "copy-helper-1.json").read_text())
    # Killed inside its first part (it never said "done"), nothing of that part committed.
    assert status["phase"] == "copying" and status["parts"] == 0
    assert world.state()["verify"]["postgres"]["identical"] is True
    for n in range(8):
        assert world.target_db.scalar(f"SELECT count(*) FROM extra_{n}") == 2000
        assert world.target_db.scalar(f"SELECT count(DISTINCT id) FROM extra_{n}") == 2000
