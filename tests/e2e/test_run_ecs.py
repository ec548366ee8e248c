"""``--runner ecs`` from the caller's side, end to end on moto: the phases that reach the stores run as ECS tasks
(a fake Fargate agent runs each container here), read their secrets from Secrets Manager through the task
definition, and share the run's state with the caller through the stack's state bucket only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from migration.infra import StackOutputs
from migration.rehearse.motoserver import MotoServer, running_moto
from migration.runbook import RunSettings
from migration.runbook.run import PHASES, _run_with_runner, open_context
from migration.runbook.state import RunState
from migration.runbook.tasks import open_runner
from migration.runner.aws import AWS_ENDPOINT_ENV
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
