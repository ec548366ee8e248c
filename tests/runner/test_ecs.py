"""The ``ecs`` runner against moto's ECS, CloudWatch Logs and Secrets Manager over HTTP, with a fake Fargate agent
(tests/support/fake_fargate.py) running each task's container here."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from migration.errors import ConfigError, RunnerError
from migration.rehearse.motoserver import MotoServer, running_moto
from migration.rehearse.pgcluster import free_port
from migration.runner import TaskSpec
from migration.runner.ecs import EcsPlace, EcsRunner, container_exit_code, task_id_of
from tests.support.fake_fargate import EXITED, FakeFargate, aws, hold_tasks_running

REGION = "eu-west-1"
#: What the stack would keep in Secrets Manager: recognisable, so that any leak of it is found.
SECRET_VALUE = "postgres://ferry_owner:Sekr3t-ECS-value-91f0@db.internal:5432/shop"
SECRET_ENV = "FERRY_TARGET_DATABASE_URL"
JOB = json.dumps({"kind": "nope"})


@dataclass(frozen=True)
class Stack:
    """The runner's part of a stack, built on moto as ``pulumi up`` would build it."""

    moto: MotoServer
    place: EcsPlace
    secret_arn: str
    recording: Path

    def runner(self, **given: Any) -> EcsRunner:
        return EcsRunner(self.place, **{"poll": 0.1, "log_grace": 0.5, **given})

    def client(self, service: str) -> Any:
        return aws(service, self.moto.endpoint, REGION)


def _runner_stack(moto: MotoServer, recording: Path) -> Stack:
    ec2, ecs = aws("ec2", moto.endpoint, REGION), aws("ecs", moto.endpoint, REGION)
    vpc = ec2.create_vpc(CidrBlock="10.61.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # moto's task ENIs need it
    subnets = tuple(
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.61.{n}.0/24", AvailabilityZone=f"{REGION}{zone}")["Subnet"][
            "SubnetId"
        ]
        for n, zone in ((1, "a"), (2, "b"))
    )
    group = ec2.create_security_group(GroupName="ferry-runner", Description="ferry runner", VpcId=vpc)["GroupId"]
    cluster = ecs.create_cluster(clusterName="ferry-shop-ci")["cluster"]["clusterArn"]
    secret = aws("secretsmanager", moto.endpoint, REGION).create_secret(
        Name="ferry/shop-ci/target-database-url", SecretString=SECRET_VALUE
    )["ARN"]
    aws("logs", moto.endpoint, REGION).create_log_group(logGroupName="/ferry/shop-ci/runner")
    definition = ecs.register_task_definition(
        family="ferry-shop-ci-runner",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="1024",
        memory="4096",
        containerDefinitions=[{
            "name": "ferry",
            "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ferry:latest",
            "memory": 4096,  # moto's RunTask needs the container's memory
            "essential": True,
            "command": ["python", "-m", "migration.worker"],
            "environment": [{"name": "FERRY_STACK", "value": "ci"}],
            "secrets": [{"name": SECRET_ENV, "valueFrom": secret}],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/ferry/shop-ci/runner", "awslogs-region": REGION, "awslogs-stream-prefix": "ferry",
            }},
        }],
    )["taskDefinition"]["taskDefinitionArn"]  # fmt: skip
    outputs = {"runnerCluster": cluster, "runnerTaskDefinition": definition, "runnerSubnets": list(subnets),
               "runnerSecurityGroup": group, "runnerLogGroup": "/ferry/shop-ci/runner"}  # fmt: skip
    place = EcsPlace.from_outputs(outputs, region=REGION, endpoint_url=moto.endpoint)
    return Stack(moto, place, secret, recording)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    recording = tmp_path_factory.mktemp("moto") / "recording.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        # Where the server's request recorder writes (not the working directory): the requests ferry sent.
        patch.setenv("MOTO_RECORDER_FILEPATH", str(recording))
        patch.setenv("AWS_ACCESS_KEY_ID", "test")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        with running_moto() as moto:
            hold_tasks_running(moto.endpoint)
            yield _runner_stack(moto, recording)


@pytest.fixture
def fargate(stack: Stack) -> Iterator[FakeFargate]:
    with FakeFargate(stack.moto.endpoint, REGION, stack.place.cluster) as agent:
        yield agent
    assert agent.errors == []


def _script(name: str, fargate: FakeFargate, code: str) -> str:
    """Let the task called *name* run *code* (a Python program) instead of the worker; *name* back."""
    fargate.commands[name] = [sys.executable, "-c", textwrap.dedent(code)]
    return name


def _moto_api(stack: Stack, action: str) -> bytes:
    method = "GET" if action == "download-recording" else "POST"
    url = f"{stack.moto.endpoint}/moto-api/recorder/{action}"
    return urllib.request.urlopen(urllib.request.Request(url, data=None if method == "GET" else b"", method=method),
                                  timeout=10).read()  # fmt: skip


def _recorded(stack: Stack) -> list[tuple[str, str]]:
    """(X-Amz-Target, body) of every request the server recorded."""
    found = []
    for line in _moto_api(stack, "download-recording").decode().splitlines():
        entry = json.loads(line)
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode(errors="replace")
        found.append((str(entry["headers"].get("X-Amz-Target", "")), body))
    return found


def test_a_task_gets_the_network_the_job_and_its_secret_from_the_task_definition_only(
    stack: Stack, fargate: FakeFargate
) -> None:
    name = _script(
        "copy",
        fargate,
        """
        import hashlib, json, os
        value = os.environ.get("FERRY_TARGET_DATABASE_URL", "")
        print("secret", hashlib.sha256(value.encode()).hexdigest(), len(value))
        print("job", json.loads(os.environ["FERRY_JOB"])["kind"])
        print("ferry-task: exit 0")
    """,
    )
    _moto_api(stack, "reset-recording")
    _moto_api(stack, "start-recording")
    runner = stack.runner()
    # What ferry run hands a runner: the value itself (a local child needs it); ECS must not pass it on.
    task = runner.start(TaskSpec(name, JOB, secrets={SECRET_ENV: SECRET_VALUE}))
    lines: list[str] = []
    outcome = runner.wait(task, lines.append, timeout=60)
    _moto_api(stack, "stop-recording")

    assert outcome.exit_code == 0 and outcome.succeeded
    digest = hashlib.sha256(SECRET_VALUE.encode()).hexdigest()
    assert lines == [f"secret {digest} {len(SECRET_VALUE)}", "job nope"]
    assert SECRET_VALUE not in "\n".join(lines)
    assert SECRET_ENV in fargate.env_names[task]

    [run_task] = [json.loads(body) for target, body in _recorded(stack) if target.endswith(".RunTask")]
    network = run_task["networkConfiguration"]["awsvpcConfiguration"]
    assert sorted(network["subnets"]) == sorted(stack.place.subnets)
    assert network["securityGroups"] == list(stack.place.security_groups)
    assert network["assignPublicIp"] == "DISABLED"
    assert run_task["launchType"] == "FARGATE" and run_task["startedBy"] == "ferry" and run_task["count"] == 1
    assert run_task["tags"] == [{"key": "ferry:task", "value": "copy"}]
    assert run_task["overrides"] == {"containerOverrides": [{
        "name": "ferry", "environment": [{"name": "FERRY_JOB", "value": JOB}]}]}  # fmt: skip
    ours = [body for target, body in _recorded(stack) if target.startswith(("AmazonEC2ContainerService", "Logs_"))]
    assert ours and not any(SECRET_VALUE in body for body in ours)

    [described] = stack.client("ecs").describe_tasks(cluster=stack.place.cluster, tasks=[task])["tasks"]
    assert [item["name"] for item in described["overrides"]["containerOverrides"][0]["environment"]] == ["FERRY_JOB"]
    assert "secrets" not in described["overrides"]["containerOverrides"][0]


def test_lines_reach_on_line_in_order_while_the_task_runs(stack: Stack, fargate: FakeFargate, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    # The task goes on only once the caller has been handed its first line: streamed, not read at the end.
    name = _script(
        "catch-up..verify",
        fargate,
        f"""
        import os, sys, time
        print("line 1")
        deadline = time.time() + 30
        while not os.path.exists({str(seen)!r}):
            if time.time() > deadline:
                print("the caller never saw line 1"); sys.exit(9)
            time.sleep(0.05)
        for n in (2, 3, 4):
            print(f"line {{n}}")
        print("ferry-task: exit 0")
    """,
    )
    runner = stack.runner()
    task = runner.start(TaskSpec(name, JOB))
    lines: list[str] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "line 1":
            assert runner.running(task)
            seen.touch()

    outcome = runner.wait(task, on_line, timeout=60)
    assert lines == ["line 1", "line 2", "line 3", "line 4"]
    assert (outcome.exit_code, outcome.last_line, outcome.reason) == (0, "line 4", EXITED)
    assert outcome.task_id == task and not runner.running(task)


def test_a_task_that_fails_ends_with_the_workers_status_and_last_line(stack: Stack, fargate: FakeFargate) -> None:
    name = _script(
        "verify",
        fargate,
        """
        import sys
        print("verifying")
        print("ferry: error: target: table orders differs", file=sys.stderr)
        print("ferry-task: exit 3", file=sys.stderr)
        sys.exit(3)
    """,
    )
    runner = stack.runner()
    outcome = runner.wait(runner.start(TaskSpec(name, JOB)), lambda line: None, timeout=60)
    assert outcome.exit_code == 3 and not outcome.succeeded
    assert outcome.last_line == "ferry: error: target: table orders differs"


def test_the_worker_refusing_its_job_is_no_success(stack: Stack, fargate: FakeFargate) -> None:
    """The real worker, whose last line says how it ended (moto says every container exits 0)."""
    runner = stack.runner()
    task = runner.start(TaskSpec("refused", JOB, secrets={SECRET_ENV: SECRET_VALUE}))
    outcome = runner.wait(task, lambda line: None, timeout=60)
    assert fargate.wait_ended(task) == 2
    assert outcome.exit_code == 2 and not outcome.succeeded
    assert "unknown job kind 'nope'" in outcome.last_line
    assert SECRET_VALUE not in outcome.last_line


def test_a_task_stopped_while_running_ends_without_a_status(stack: Stack, fargate: FakeFargate) -> None:
    name = _script(
        "follow",
        fargate,
        """
        import time
        print("started", flush=True)
        time.sleep(120)
        print("ferry-task: exit 0")
    """,
    )
    runner = stack.runner()
    task = runner.start(TaskSpec(name, JOB))
    lines: list[str] = []
    assert runner.wait(task, lines.append, timeout=30, until=lambda: lines == ["started"]) is None
    assert runner.running(task)
    with pytest.raises(RunnerError, match="still running after"):
        runner.wait(task, lines.append, timeout=0.3)
    runner.stop(task)
    outcome = runner.wait(task, lines.append, timeout=60)
    assert outcome is not None and outcome.exit_code is None and not outcome.succeeded
    assert "stopped by ferry" in outcome.reason
    assert lines == ["started"] and outcome.last_line == "started"  # each line shown once, over three waits
    assert not runner.running(task)
    assert fargate.wait_ended(task) == -15  # the process had SIGTERM, as ECS sends it
    runner.stop(task)  # a stopped task is left alone: the reason stays ferry's
    [described] = stack.client("ecs").describe_tasks(cluster=stack.place.cluster, tasks=[task])["tasks"]
    assert described["stoppedReason"] == "stopped by ferry"


def test_a_wait_until_returns_while_the_task_runs_and_the_next_goes_on_from_there(
    stack: Stack, fargate: FakeFargate, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    code = f"""
        import os, time
        print("a", flush=True)
        deadline = time.time() + 30
        while not os.path.exists({str(go)!r}) and time.time() < deadline:
            time.sleep(0.05)
        print("b")
        print("ferry-task: exit 0")
    """
    runner = stack.runner()
    task = runner.start(TaskSpec(_script("copy..verify", fargate, code), JOB))
    lines: list[str] = []
    assert runner.wait(task, lines.append, timeout=60, until=lambda: lines == ["a"]) is None
    assert lines == ["a"] and runner.running(task)
    go.touch()
    outcome = runner.wait(task, lines.append, timeout=60)
    assert outcome is not None and (outcome.exit_code, outcome.last_line) == (0, "b")
    assert lines == ["a", "b"]


def test_a_new_runner_with_only_the_task_arn_waits_for_the_task(stack: Stack, fargate: FakeFargate) -> None:
    name = _script(
        "copy..final-sync",
        fargate,
        """
        import time
        print("one"); print("two", flush=True)
        time.sleep(0.5)
        print("ferry-task: exit 4")
        raise SystemExit(4)
    """,
    )
    task = stack.runner().start(TaskSpec(name, JOB))
    fargate.wait_launched(task)
    lines: list[str] = []
    outcome = EcsRunner(replace(stack.place), poll=0.1, log_grace=0.5).wait(task, lines.append, timeout=60)
    assert lines == ["one", "two"]
    assert (outcome.exit_code, outcome.last_line) == (4, "two")


def test_a_task_ecs_does_not_know_is_not_running(stack: Stack) -> None:
    runner = stack.runner()
    unknown = f"arn:aws:ecs:{REGION}:123456789012:task/ferry-shop-ci/0123456789abcdef0123456789abcdef"
    assert not runner.running(unknown)
    with pytest.raises(RunnerError, match="is not in cluster"):
        runner.wait(unknown, lambda line: None, timeout=5)


def _one_line_without_secret(error: RunnerError) -> str:
    message = str(error)
    assert "\n" not in message and SECRET_VALUE not in message and "Sekr3t" not in message
    return message


def test_an_unreachable_endpoint_is_one_line(stack: Stack) -> None:
    runner = EcsRunner(replace(stack.place, endpoint_url=f"http://127.0.0.1:{free_port()}"), poll=0.1)
    with pytest.raises(RunnerError) as caught:
        runner.start(TaskSpec("copy", JOB, secrets={SECRET_ENV: SECRET_VALUE}))
    assert "cannot reach AWS" in _one_line_without_secret(caught.value)
    with pytest.raises(RunnerError, match="cannot reach AWS"):
        runner.running("arn:aws:ecs:eu-west-1:123456789012:task/ferry-shop-ci/0123")


def test_a_missing_cluster_is_one_line(stack: Stack) -> None:
    missing = f"arn:aws:ecs:{REGION}:123456789012:cluster/nowhere"
    runner = EcsRunner(replace(stack.place, cluster=missing), poll=0.1)
    with pytest.raises(RunnerError) as caught:
        runner.start(TaskSpec("copy", JOB, secrets={SECRET_ENV: SECRET_VALUE}))
    message = _one_line_without_secret(caught.value)
    assert "ClusterNotFoundException" in message and missing in message
    with pytest.raises(RunnerError, match="ClusterNotFoundException"):
        runner.running("arn:aws:ecs:eu-west-1:123456789012:task/nowhere/0123")


def _task_count(stack: Stack) -> int:
    return len(stack.client("ecs").list_tasks(cluster=stack.place.cluster)["taskArns"])


def test_a_secret_the_task_definition_does_not_give_is_refused_before_any_task(stack: Stack) -> None:
    before = _task_count(stack)
    with pytest.raises(RunnerError) as caught:
        stack.runner().start(TaskSpec("copy", JOB, secrets={"FERRY_S3_SOURCE_SECRET_ACCESS_KEY": SECRET_VALUE}))
    message = _one_line_without_secret(caught.value)
    assert "FERRY_S3_SOURCE_SECRET_ACCESS_KEY" in message and "pulumi up" in message
    assert _task_count(stack) == before


def test_a_job_too_long_for_ecs_is_refused_before_any_task(stack: Stack) -> None:
    before = _task_count(stack)
    with pytest.raises(RunnerError, match="too long for ECS"):
        stack.runner().start(TaskSpec("copy", json.dumps({"kind": "nope", "pad": "x" * 9000})))
    assert _task_count(stack) == before


def test_the_place_comes_from_the_stack_outputs() -> None:
    outputs = {"runnerCluster": "arn:c", "runnerTaskDefinition": "arn:td", "runnerSubnets": "subnet-1, subnet-2",
               "runnerSecurityGroup": "sg-1", "runnerLogGroup": "/ferry/g"}  # fmt: skip
    place = EcsPlace.from_outputs(outputs, region=REGION, endpoint_url="http://127.0.0.1:1")
    assert (place.subnets, place.security_groups, place.log_group) == (("subnet-1", "subnet-2"), ("sg-1",), "/ferry/g")
    assert place.log_stream("arn:aws:ecs:eu-west-1:1:task/c/abc123") == "ferry/ferry/abc123"
    assert task_id_of("arn:aws:ecs:eu-west-1:1:task/c/abc123") == "abc123"
    for key in outputs:
        with pytest.raises(ConfigError) as caught:
            EcsPlace.from_outputs({k: v for k, v in outputs.items() if k != key}, region=REGION)
        assert key in str(caught.value) and "pulumi up" in str(caught.value) and "ferry:runner" in str(caught.value)


def test_a_containers_exit_code_counts_only_once_ecs_saw_it_stop() -> None:
    def described(**container: Any) -> dict[str, Any]:
        return {"containers": [{"name": "sidecar", "lastStatus": "STOPPED", "exitCode": 0}, {"name": "ferry",
                                                                                           **container}]}  # fmt: skip

    assert container_exit_code(described(lastStatus="STOPPED", exitCode=137), "ferry") == 137
    assert container_exit_code(described(lastStatus="PENDING", exitCode=0), "ferry") is None  # moto's
    assert container_exit_code(described(lastStatus="STOPPED"), "ferry") is None  # never started
