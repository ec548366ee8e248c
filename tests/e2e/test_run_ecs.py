"""``--runner ecs`` from the caller's side, end to end on moto: the phases that reach the stores run as ECS tasks
(a fake Fargate agent runs each container here), read their secrets from Secrets Manager through the task
definition, and share the run's state with the caller through the stack's state bucket only."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from migration.infra import StackOutputs
from migration.platform.heroku import HerokuClient
from migration.platform.heroku_app import HerokuApp
from migration.rehearse.motoserver import MotoServer, running_moto
from migration.runbook import RunSettings, finish, rollback, run
from migration.runbook.run import PHASES, _run_with_runner, open_context
from migration.runbook.state import RunState
from migration.runbook.status import status
from migration.runbook.tasks import open_runner
from migration.runner.aws import AWS_ENDPOINT_ENV
from migration.stackconfig import load_stack_file
from tests.support.fake_fargate import FakeFargate, aws, hold_tasks_running
from tests.support.world import World, stack_file

REGION = "us-east-1"
BUCKET = "shop-test-ferry-state"


def _runner_stack(moto: MotoServer, world: World) -> dict[str, object]:
    """The runner as ``pulumi up`` builds it, on moto, with the world's targets in its secrets."""
    ec2, ecs = aws("ec2", moto.endpoint, REGION), aws("ecs", moto.endpoint, REGION)
    vpc = ec2.create_vpc(CidrBlock="10.61.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.61.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]
    group = ec2.create_security_group(GroupName="runner", Description="runner", VpcId=vpc)["GroupId"]
    cluster = ecs.create_cluster(clusterName="shop-test-ferry")["cluster"]["clusterArn"]
    aws("s3", moto.endpoint, REGION).create_bucket(Bucket=BUCKET)
    aws("logs", moto.endpoint, REGION).create_log_group(logGroupName="/ferry/shop-test")
    manager = aws("secretsmanager", moto.endpoint, REGION)
    values = {"HEROKU_API_KEY": world.fake.token, "FERRY_TARGET_DATABASE_URL": world.target_db.url,
              "FERRY_TARGET_APP_DATABASE_URL": world.target_db.url,
              "FERRY_TARGET_REDIS_URL": world.target_redis.url()}  # fmt: skip
    secrets = [{"name": env, "valueFrom": manager.create_secret(Name=f"ferry/shop-test/{env}", SecretString=value)["ARN"]}
               for env, value in values.items()]  # fmt: skip
    definition = ecs.register_task_definition(
        family="shop-test-ferry", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="1024",
        memory="4096",
        containerDefinitions=[{
            "name": "ferry", "image": "ferry:latest", "memory": 4096, "essential": True,
            "environment": [{"name": "FERRY_STATE_BUCKET", "value": BUCKET}, {"name": "AWS_REGION", "value": REGION}],
            "secrets": secrets,
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ferry/shop-test", "awslogs-region": REGION, "awslogs-stream-prefix": "ferry"}},
        }],
    )["taskDefinition"]["taskDefinitionArn"]  # fmt: skip
    return {"runnerCluster": cluster, "runnerTaskDefinition": definition, "runnerSubnets": [subnet["SubnetId"]],
            "runnerSecurityGroup": group, "runnerLogGroup": "/ferry/shop-test", "stateBucket": BUCKET,
            "databaseOwnerUrls": {"shop": world.target_db.url}, "databaseUrls": {"shop": world.target_db.url},
            "redisUrl": world.target_redis.url()}  # fmt: skip


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with running_moto() as server:
        monkeypatch.setenv(AWS_ENDPOINT_ENV, server.endpoint)
        hold_tasks_running(server.endpoint)
        yield server


def test_the_data_plane_runs_as_ecs_tasks_sharing_the_state_through_the_bucket_alone(
    world: World, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stack_file(world.root, "http://127.0.0.1:9", capture=True, reverse=False, smokeUrls=[])
    for name in ("HEROKU_API_KEY", "HEROKU_API_URL"):
        monkeypatch.setenv(name, world.env[name])
    outputs = _runner_stack(moto, world)
    secret_keys = frozenset({"databaseOwnerUrls", "databaseUrls", "redisUrl"})
    # The caller's state directory: a task in the VPC never sees it (its state comes from the bucket).
    settings = RunSettings(stack="test", root=world.root, state_dir=tmp_path / "laptop", yes=True, runner="ecs")
    network = {"HEROKU_API_URL": world.env["HEROKU_API_URL"], AWS_ENDPOINT_ENV: moto.endpoint,
               "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}  # fmt: skip
    lines: list[str] = []
    with FakeFargate(moto.endpoint, REGION, str(outputs["runnerCluster"]), network=network) as fargate:
        ctx = open_context(settings, lines.append, lambda _question: True)
        ctx.stack_outputs(StackOutputs(values=outputs, secret_keys=secret_keys))
        runner = open_runner(ctx)
        runner.poll = 0.1  # type: ignore[attr-defined]
        wanted = ("preflight", "copy", "catch-up", "freeze", "final-sync", "verify")
        _run_with_runner(ctx, runner, [phase for phase in PHASES if phase.name in wanted], None)
    assert fargate.errors == []
    said = "\n".join(lines)
    assert said.count("started (ecs)") == 1, said  # preflight..verify: no control phase between them
    assert "[final-sync] done" in said and "[verify] done" in said
    # Every task got its secrets from the task definition, never from the call.
    for names in fargate.env_names.values():
        assert {"FERRY_TARGET_DATABASE_URL", "HEROKU_API_KEY", "FERRY_JOB", "FERRY_STATE_BUCKET"} <= set(names)
    state = RunState.load(settings.state_file, "test")
    assert state.done("verify") and state.frozen
    assert state.verify["postgres"]["identical"] is True
    assert world.target_db.scalar("SELECT count(*) FROM orders") == 5000
    for secret in (world.target_db.cluster.password, world.target_redis.password, world.fake.token):
        assert secret not in said
        assert secret not in settings.state_file.read_text()


class _StackOnMoto:
    """Pulumi's part, as the stack's cutover component would do it (the engine cannot run here): the outputs of
    the runner built on moto, and ``ferry:cutover`` applied to the app through the Platform API."""

    values: ClassVar[dict[str, Any]] = {}

    def __init__(self, root: Path, stack: str, _say: Any) -> None:
        self.config = load_stack_file(root, stack)

    def outputs(self) -> StackOutputs:
        return StackOutputs(values=dict(self.values), secret_keys=frozenset({"databaseOwnerUrls", "databaseUrls",
                                                                            "redisUrl"}))  # fmt: skip

    def up(self, _message: str) -> StackOutputs:
        return self.outputs()

    def export(self) -> dict[str, Any]:
        return {"deployment": "on moto"}

    def set_cutover(self, state: str, *, end_bulk_load: bool = False, key: str = "cutover") -> StackOutputs:
        app, moves = HerokuApp(HerokuClient(), self.config.heroku.app), self.config.moved_addons()
        urls = {"DATABASE_URL": self.values["databaseUrls"]["shop"], "REDIS_URL": self.values["redisUrl"]}
        if state == "aliased":
            app.alias(moves)
        elif state == "switched":
            app.switch(urls, moves, "moto")
        else:
            app.rollback(moves)
        app.close()
        return self.outputs()


@pytest.mark.parametrize(
    "end",
    ["finish", "rollback", "finish without its keeper", "rollback without its keeper", "finish after a new keeper"],
)
def test_the_follow_back_runs_in_a_task_that_keeps_it_and_does_the_rollback_or_finish_asked_of_it(
    world: World, moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, end: str
) -> None:
    """With capture (the follow back on), under ``--runner ecs``: the task that begins the follow back keeps its
    workers after the run; ``ferry rollback`` (the app's move back handed over to the caller) or ``ferry finish``
    is done in that task, where the workers are."""
    stack_file(world.root, "http://127.0.0.1:9", capture=True, smokeUrls=[])
    for name in ("HEROKU_API_KEY", "HEROKU_API_URL"):
        monkeypatch.setenv(name, world.env[name])
    outputs = _runner_stack(moto, world)
    monkeypatch.setattr(_StackOnMoto, "values", outputs)
    monkeypatch.setattr("migration.runbook.context.Infra", _StackOnMoto)
    settings = RunSettings(stack="test", root=world.root, state_dir=tmp_path / "laptop", yes=True, runner="ecs")
    network = {"HEROKU_API_URL": world.env["HEROKU_API_URL"], AWS_ENDPOINT_ENV: moto.endpoint,
               "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}  # fmt: skip
    lines: list[str] = []
    with FakeFargate(moto.endpoint, REGION, str(outputs["runnerCluster"]), network=network) as fargate:
        run(settings, say=lines.append, confirm=lambda _question: True)
        assert world.fake.apps["shop"].config["DATABASE_URL"] == world.target_db.url
        assert (settings.state_dir / "keeper.json").exists(), "\n".join(lines)
        standing = status(settings)  # read from the bucket, where the tasks write the state
        assert standing.keeper is not None and standing.keeper["running"]
        assert any(line.startswith("  follow back kept by task arn:aws:ecs:") for line in standing.lines())
        # Followed back through the workers the keeper holds.
        world.target_db.execute("UPDATE orders SET note = 'on the target' WHERE id = 12")
        deadline = time.monotonic() + 60
        while world.source_db.scalar("SELECT note FROM orders WHERE id = 12") != "on the target":
            assert time.monotonic() < deadline, "not followed back"
            time.sleep(0.2)
        if "without" in end:
            # The keeper stopped (a Fargate task stopped by hand, a host gone): its workers with it.
            keeper = json.loads((settings.state_dir / "keeper.json").read_text())["id"]
            ecs = aws("ecs", moto.endpoint, REGION)
            ecs.stop_task(cluster=outputs["runnerCluster"], task=keeper, reason="stopped by hand")
            fargate.wait_ended(keeper, timeout=60)
        if end == "finish after a new keeper":
            # A rollback asked of a keeper that ended before it took the request; then a new keeper started.
            keeper = json.loads((settings.state_dir / "keeper.json").read_text())["id"]
            aws("ecs", moto.endpoint, REGION).stop_task(cluster=outputs["runnerCluster"], task=keeper, reason="x")
            fargate.wait_ended(keeper, timeout=60)
            aws("s3", moto.endpoint, REGION).put_object(Bucket=BUCKET, Key="runs/test/request.json",
                                                        Body=b'{"request": "rollback"}')  # fmt: skip
            run(settings, say=lines.append, confirm=lambda _question: True)  # the follow back started again
            time.sleep(3)
            assert world.fake.apps["shop"].config["DATABASE_URL"] == world.target_db.url  # nothing rolled back
            assert not RunState.load(settings.state_file, "test").back
        if end.startswith("rollback"):
            rollback(settings, say=lines.append)
            assert world.fake.apps["shop"].config["DATABASE_URL"] == world.source_db.url
            assert world.source_db.scalar("SELECT note FROM orders WHERE id = 12") == "on the target"
            state = RunState.load(settings.state_file, "test")
            assert state.rolled_back and state.done("back:switch") and state.done("back:verify")
            world.source_db.execute("INSERT INTO orders VALUES (9003, 'after the rollback')")
        else:
            finish(settings, say=lines.append)
            for db in (world.source_db, world.target_db):
                assert db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_capture'") == 0
        assert not (settings.state_dir / "keeper.json").exists()
    assert fargate.errors == []
    said = "\n".join(lines)
    assert "this task keeps the follow back's workers" in said
    if "without" in end:  # done by a task of its own, which starts the follow back's workers again
        assert f"[{end.split()[0]}] asked of task" not in said
    else:
        assert f"[{end.split()[0]}] asked of task" in said
    for secret in (world.target_db.cluster.password, world.target_redis.password, world.fake.token):
        assert secret not in said
