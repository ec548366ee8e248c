"""A stand-in for Fargate's agent on a moto server: moto's ECS records tasks but runs nothing.

The agent watches a cluster for RUNNING tasks and runs each one's container here, as Fargate would: the task
definition's and the override's environment, each secret of the task definition fetched from Secrets Manager by
its ``valueFrom``, every output line sent to the awslogs stream ``PREFIX/CONTAINER/TASK-ID``. A process that ends
stops its task (``Essential container in task exited``); a task someone stops gets its process SIGTERM.

What runs is the worker (``python -m migration.worker``) unless the test names another command for the task's
name (its ``ferry:task`` tag) in :attr:`FakeFargate.commands`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[2]
WORKER = [sys.executable, "-m", "migration.worker"]
EXITED = "Essential container in task exited"


def hold_tasks_running(endpoint: str) -> None:
    """moto moves a task one step towards STOPPED at each DescribeTasks by default; Fargate does not."""
    body = {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}}
    request = urllib.request.Request(f"{endpoint}/moto-api/state-manager/set-transition",
                                     data=json.dumps(body).encode(), method="POST")  # fmt: skip
    urllib.request.urlopen(request, timeout=10).read()


def aws(service: str, endpoint: str, region: str) -> Any:
    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip


class _Task:
    def __init__(self, arn: str, process: subprocess.Popen[str]) -> None:
        self.arn, self.process = arn, process
        self.stopped_by_other = False
        self.ended = threading.Event()


class FakeFargate:
    """Runs the cluster's tasks while the ``with`` block lasts.

    :param cluster: the cluster's ARN.
    :param poll: how often (seconds) it looks for new and stopped tasks.
    """

    def __init__(
        self, endpoint: str, region: str, cluster: str, poll: float = 0.05, network: dict[str, str] | None = None
    ) -> None:
        self.cluster, self.poll = cluster, poll
        #: What the task's network stands for here (the Heroku API's and AWS's endpoints, their test keys).
        self.network = dict(network or {})
        self.ecs, self.logs = aws("ecs", endpoint, region), aws("logs", endpoint, region)
        self.secrets = aws("secretsmanager", endpoint, region)
        #: task name (its ``ferry:task`` tag) → the command its container runs instead of the worker.
        self.commands: dict[str, list[str]] = {}
        #: task ARN → the names (never the values) of the environment its process was given.
        self.env_names: dict[str, list[str]] = {}
        #: task ARN → its process's exit status (negative: the signal that ended it).
        self.exit_codes: dict[str, int] = {}
        #: what went wrong inside the agent (a test checks it is empty).
        self.errors: list[str] = []
        self._tasks: dict[str, _Task] = {}
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="fake-fargate", daemon=True)

    def __enter__(self) -> FakeFargate:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._done.set()
        self._thread.join(10)
        with self._lock:
            tasks = list(self._tasks.values())
        for task in tasks:
            if task.process.poll() is None:
                task.process.kill()
            task.ended.wait(10)

    def wait_launched(self, arn: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while arn not in self._tasks:
            assert time.monotonic() < deadline, f"the agent never launched {arn} ({self.errors})"
            time.sleep(0.02)

    def wait_ended(self, arn: str, timeout: float = 20) -> int:
        self.wait_launched(arn, timeout)
        assert self._tasks[arn].ended.wait(timeout), f"{arn}'s process did not end"
        return self.exit_codes[arn]

    def _loop(self) -> None:
        while not self._done.is_set():
            try:
                self._tick()
            except Exception as exc:  # the test sees it in self.errors rather than a silent dead thread
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._done.wait(self.poll)

    def _tick(self) -> None:
        arns = self.ecs.list_tasks(cluster=self.cluster, desiredStatus="RUNNING")["taskArns"]
        new = [arn for arn in arns if arn not in self._tasks]
        if new:
            for task in self.ecs.describe_tasks(cluster=self.cluster, tasks=new, include=["TAGS"])["tasks"]:
                self._launch(task)
        with self._lock:
            alive = [task for task in self._tasks.values() if task.process.poll() is None]
        if alive:
            described = self.ecs.describe_tasks(cluster=self.cluster, tasks=[task.arn for task in alive])["tasks"]
            stopped = {task["taskArn"] for task in described if task["lastStatus"] == "STOPPED"}
            for task in alive:
                if task.arn in stopped:
                    task.stopped_by_other = True
                    task.process.terminate()  # ECS's SIGTERM on StopTask

    def _launch(self, task: dict[str, Any]) -> None:
        arn = task["taskArn"]
        definition = self.ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
        container = definition["containerDefinitions"][0]
        # A container sees its image's environment and ECS's, not the host's: PATH and the locale only.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
               **self.network}  # fmt: skip
        env.update({item["name"]: item["value"] for item in container.get("environment", [])})
        for override in task.get("overrides", {}).get("containerOverrides", []):
            if override.get("name") == container["name"]:
                env.update({item["name"]: item["value"] for item in override.get("environment", [])})
        for secret in container.get("secrets", []):
            env[secret["name"]] = self.secrets.get_secret_value(SecretId=secret["valueFrom"])["SecretString"]
        options = container["logConfiguration"]["options"]
        group = options["awslogs-group"]
        stream = f"{options['awslogs-stream-prefix']}/{container['name']}/{arn.rsplit('/', 1)[-1]}"
        self.logs.create_log_stream(logGroupName=group, logStreamName=stream)
        name = next((tag["value"] for tag in task.get("tags", []) if tag["key"] == "ferry:task"), "")
        process = subprocess.Popen(
            self.commands.get(name, WORKER), env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        launched = _Task(arn, process)
        with self._lock:
            self.env_names[arn] = sorted(env)
            self._tasks[arn] = launched
        threading.Thread(target=self._relay, args=(launched, group, stream), daemon=True).start()

    def _relay(self, task: _Task, group: str, stream: str) -> None:
        """The awslogs driver, then the end of an essential container."""
        try:
            assert task.process.stdout is not None
            for line in task.process.stdout:
                event = {"timestamp": int(time.time() * 1000), "message": line.rstrip("\n")}
                self.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=[event])
            self.exit_codes[task.arn] = task.process.wait()
            if not task.stopped_by_other:
                now = self.ecs.describe_tasks(cluster=self.cluster, tasks=[task.arn])["tasks"][0]
                if now["lastStatus"] != "STOPPED":
                    self.ecs.stop_task(cluster=self.cluster, task=task.arn, reason=EXITED)
        except Exception as exc:
            self.errors.append(f"{task.arn}: {type(exc).__name__}: {exc}")
        finally:
            task.ended.set()
