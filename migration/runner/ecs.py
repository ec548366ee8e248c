"""The ``ecs`` runner: each task is a Fargate task of the stack's runner task definition, in its private subnets.

The task definition (``pulumi up`` declares it when ``ferry:runner`` is set) holds the image, the command, the
log configuration and the secrets, as ECS secrets read from Secrets Manager by ECS itself. ``RunTask`` adds the
plain environment alone (``FERRY_JOB``): no secret value ever travels in a call, a tag or a log line of ours.
The output is read back from the task's CloudWatch log stream; how the task ended is the worker's own last line
(:data:`~migration.runner.base.EXIT_LINE`) when it wrote one, else what ECS reports of its container.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import botocore.exceptions

from migration.errors import ConfigError, RunnerError
from migration.redact import redact, register_secret
from migration.runner.aws import aws_client, aws_errors, endpoint_from_env, error_code
from migration.runner.base import EXIT_LINE, TaskOutcome, TaskSpec, exit_code_of

__all__ = [
    "OUTPUT_KEYS",
    "STOP_REASON",
    "TASK_TAG",
    "EcsPlace",
    "EcsRunner",
    "container_exit_code",
    "task_id_of",
]

#: The stack outputs that say where the runner's tasks go (``EcsPlace`` field → output name).
OUTPUT_KEYS = {
    "cluster": "runnerCluster",
    "task_definition": "runnerTaskDefinition",
    "subnets": "runnerSubnets",
    "security_groups": "runnerSecurityGroup",
    "log_group": "runnerLogGroup",
}
#: The reason ``stop`` gives ECS; it comes back as the stopped task's ``stoppedReason``.
STOP_REASON = "stopped by ferry"
#: The tag carrying the task's name (``copy..verify``), and the ``startedBy`` every task of ferry's has.
TASK_TAG = "ferry:task"
STARTED_BY = "ferry"
#: ECS refuses a RunTask whose overrides, JSON included, are longer than this.
OVERRIDES_LIMIT = 8192
_TAG_UNSAFE = re.compile(r"[^\w\s.:/=+\-@]")


@dataclass(frozen=True)
class EcsPlace:
    """Where the runner's tasks run and log.

    :param cluster: the ECS cluster's ARN (or name).
    :param task_definition: the runner's task definition (ARN, or ``family:revision``).
    :param subnets: the private subnets a task's network interface goes into.
    :param security_groups: the runner's security group (the stores admit it).
    :param log_group: the task definition's awslogs group.
    :param region: the stack's region.
    :param log_stream_prefix: its ``awslogs-stream-prefix``; a task's stream is ``PREFIX/CONTAINER/TASK-ID``.
    :param container: the container in the task definition that runs the worker.
    :param endpoint_url: one endpoint for ECS and CloudWatch Logs instead of AWS's (a moto server).
    """

    cluster: str
    task_definition: str
    subnets: tuple[str, ...]
    security_groups: tuple[str, ...]
    log_group: str
    region: str
    log_stream_prefix: str = "ferry"
    container: str = "ferry"
    endpoint_url: str | None = None

    @classmethod
    def from_outputs(cls, outputs: Mapping[str, Any], *, region: str, endpoint_url: str | None = None) -> EcsPlace:
        """The place the stack's outputs describe (:data:`OUTPUT_KEYS`).

        :param outputs: the stack's outputs (``pulumi stack output``).
        :param endpoint_url: unset: :data:`~migration.runner.aws.AWS_ENDPOINT_ENV`'s, else AWS's own.
        :raises ConfigError: an output is missing or empty.
        """
        found: dict[str, Any] = {}
        for field, key in OUTPUT_KEYS.items():
            value = outputs.get(key)
            if value in (None, "", [], ()):
                raise ConfigError(f"the stack has no {key} output: `pulumi up` declares the runner when ferry:runner "
                                  "is set in the stack file")  # fmt: skip
            found[field] = _strings(value, key) if field in ("subnets", "security_groups") else str(value)
        return cls(**found, region=region, endpoint_url=endpoint_url or endpoint_from_env())

    def log_stream(self, task: str) -> str:
        """The CloudWatch log stream of *task* (its ARN or id), as the awslogs driver names it."""
        return f"{self.log_stream_prefix}/{self.container}/{task_id_of(task)}"


def _strings(value: Any, key: str) -> tuple[str, ...]:
    """A list output, or one id, or ids a Pulumi string output joined with commas (or as a JSON list)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ConfigError(f"the stack's {key} output is not a list of ids: {text[:80]!r}") from None
        else:
            value = [part for part in (p.strip() for p in text.split(",")) if part]
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"the stack's {key} output is not a list of ids")
    return tuple(value)


def task_id_of(task: str) -> str:
    """The id at the end of a task ARN (``arn:aws:ecs:…:task/CLUSTER/ID`` → ``ID``); an id stays itself."""
    return task.rsplit("/", 1)[-1]


def container_exit_code(described: Mapping[str, Any], container: str) -> int | None:
    """The exit status ECS reports for *container* of a described task, if it reports one.

    Only a container ECS saw stop has one: a container that never started (its image or a secret could not be
    fetched) has none, and an ``exitCode`` beside another status is no status (moto's, always 0).
    """
    for item in described.get("containers") or []:
        if item.get("name") == container and item.get("lastStatus") == "STOPPED" and "exitCode" in item:
            return int(item["exitCode"])
    return None


class _Heard:
    """What the task's output said so far: its exit line's status and its last other line."""

    def __init__(self) -> None:
        self.exit_code: int | None = None
        self.last_line = ""

    def hear(self, line: str, on_line: Callable[[str], None]) -> None:
        if line.startswith(EXIT_LINE):
            self.exit_code = exit_code_of([line])
            return
        on_line(line)
        if line.strip():
            self.last_line = line


class _LogStream:
    """One task's CloudWatch log stream, read forward from its start, page by page."""

    def __init__(self, logs: Any, group: str, stream: str) -> None:
        self._logs, self._group, self._stream = logs, group, stream
        self._token: str | None = None

    def read(self) -> list[str]:
        """The lines logged since the last read; none while the stream does not exist yet."""
        lines: list[str] = []
        while True:
            request: dict[str, Any] = {"logGroupName": self._group, "logStreamName": self._stream,
                                       "startFromHead": True}  # fmt: skip
            if self._token is not None:
                request["nextToken"] = self._token
            with aws_errors(f"CloudWatch Logs GetLogEvents {self._group} {self._stream}"):
                try:
                    response = self._logs.get_log_events(**request)
                except botocore.exceptions.ClientError as exc:
                    # The awslogs driver creates the stream when the container starts: until then, no output.
                    if error_code(exc) == "ResourceNotFoundException":
                        return lines
                    raise
            events = response.get("events") or []
            for event in events:
                lines.extend(str(event.get("message", "")).splitlines() or [""])
            token = response.get("nextForwardToken")
            # Only the token handed back unchanged says the end: a page may be empty before it.
            if not token or token == self._token:
                return lines
            self._token = token


class EcsRunner:
    """Tasks as Fargate tasks of the stack's runner (:class:`EcsPlace`).

    :param poll: how often (seconds) a wait asks ECS for the task's state and CloudWatch for its output.
    :param log_grace: how long (seconds) a wait reads on after the task stopped, when the worker's last line
        has not arrived yet (CloudWatch receives the output a few seconds late).
    """

    name = "ecs"

    def __init__(self, place: EcsPlace, *, poll: float = 2.0, log_grace: float = 5.0) -> None:
        self.place, self.poll, self.log_grace = place, poll, log_grace
        self._secret_names: frozenset[str] | None = None
        #: Where each task's output was read to, and what it said, when a wait returned before its end.
        self._followed: dict[str, tuple[_LogStream, _Heard]] = {}

    @classmethod
    def from_outputs(
        cls, outputs: Mapping[str, Any], *, region: str, endpoint_url: str | None = None, poll: float = 2.0
    ) -> EcsRunner:
        """The runner the stack's outputs describe (:meth:`EcsPlace.from_outputs`). :raises ConfigError:"""
        return cls(EcsPlace.from_outputs(outputs, region=region, endpoint_url=endpoint_url), poll=poll)

    @cached_property
    def _ecs(self) -> Any:
        return aws_client("ecs", self.place.region, self.place.endpoint_url)

    @cached_property
    def _logs(self) -> Any:
        return aws_client("logs", self.place.region, self.place.endpoint_url)

    def start(self, spec: TaskSpec) -> str:
        """``RunTask`` with the job as the container's only added environment; the task's ARN.

        *spec*'s secrets never reach the call: the task definition gives the task each of them from Secrets
        Manager, which is checked (by name alone) first.

        :raises RunnerError: the task definition lacks a secret the job needs, or ECS did not start the task.
        """
        for value in spec.secrets.values():
            register_secret(value)  # a value the caller holds is hidden from whatever we print
        place = self.place
        doing = f"ECS RunTask ({spec.name}) in cluster {place.cluster}"
        self._check_secrets(spec)
        overrides = {"containerOverrides": [{
            "name": place.container,
            "environment": [{"name": name, "value": value} for name, value in spec.environment.items()],
        }]}  # fmt: skip
        size = len(json.dumps(overrides, separators=(",", ":")))
        if size > OVERRIDES_LIMIT:
            raise RunnerError(f"{doing}: the job is too long for ECS ({size} characters of overrides; ECS takes "
                              f"{OVERRIDES_LIMIT})")  # fmt: skip
        with aws_errors(doing):
            response = self._ecs.run_task(
                cluster=place.cluster,
                taskDefinition=place.task_definition,
                launchType="FARGATE",
                count=1,
                startedBy=STARTED_BY,
                networkConfiguration={"awsvpcConfiguration": {
                    "subnets": list(place.subnets),
                    "securityGroups": list(place.security_groups),
                    # Private subnets: the stores, Secrets Manager and ECR are reached through the VPC.
                    "assignPublicIp": "DISABLED",
                }},
                overrides=overrides,
                tags=[{"key": TASK_TAG, "value": _TAG_UNSAFE.sub("-", spec.name)[:256] or "task"}],
            )  # fmt: skip
        failures = response.get("failures") or []
        if failures:
            failure = failures[0]
            detail = f" ({failure['detail']})" if failure.get("detail") else ""
            raise RunnerError(redact(f"{doing}: {failure.get('reason', 'refused')}{detail}"))
        tasks = response.get("tasks") or []
        if not tasks:
            raise RunnerError(f"{doing}: ECS started no task and gave no reason")
        return str(tasks[0]["taskArn"])

    def _check_secrets(self, spec: TaskSpec) -> None:
        """Every secret the job references is one the task definition gives the task."""
        if not spec.secrets:
            return
        if self._secret_names is None:
            place = self.place
            with aws_errors(f"ECS DescribeTaskDefinition {place.task_definition}"):
                definition = self._ecs.describe_task_definition(taskDefinition=place.task_definition)["taskDefinition"]
            containers = [c for c in definition.get("containerDefinitions", []) if c.get("name") == place.container]
            if not containers:
                raise RunnerError(f"task definition {place.task_definition} has no container {place.container}")
            self._secret_names = frozenset(str(s.get("name")) for s in containers[0].get("secrets") or [])
        missing = sorted(set(spec.secrets) - self._secret_names)
        if missing:
            raise RunnerError(
                f"task definition {self.place.task_definition} gives the task no {', '.join(missing)} (an ECS task "
                "reads its secrets from Secrets Manager through its task definition): `pulumi up` declares them"
            )

    def _describe(self, task: str) -> dict[str, Any] | None:
        """The task as ECS describes it; ``None`` when ECS does not know it (any more)."""
        with aws_errors(f"ECS DescribeTasks {task_id_of(task)} in cluster {self.place.cluster}"):
            response = self._ecs.describe_tasks(cluster=self.place.cluster, tasks=[task])
        tasks = response.get("tasks") or []
        return dict(tasks[0]) if tasks else None

    def running(self, task_id: str) -> bool:
        """Whether ECS has the task and has not stopped it. :raises RunnerError: ECS could not be asked."""
        described = self._describe(task_id)
        return described is not None and described.get("lastStatus") != "STOPPED"

    def wait(
        self,
        task_id: str,
        on_line: Callable[[str], None],
        timeout: float | None = None,
        until: Callable[[], bool] | None = None,
    ) -> TaskOutcome | None:
        """Relay the task's log lines to *on_line* until ECS has stopped it; how it ended.

        Any caller with the task's ARN may wait, the one that started it or another (a run started again): a
        first wait reads the log stream from its start, a later one of this runner from where the last stopped.

        :param on_line: each line the task wrote, in order (its exit line kept back).
        :param timeout: seconds; unset: as long as the task runs.
        :param until: asked between polls: true returns ``None`` while the task runs on.
        :raises RunnerError: the task is unknown to ECS, or still running after *timeout*.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        followed = self._followed.pop(task_id, None)
        if followed is None:
            followed = _LogStream(self._logs, self.place.log_group, self.place.log_stream(task_id)), _Heard()
        stream, heard = followed

        def hear(lines: list[str]) -> None:
            for line in lines:
                heard.hear(redact(line), on_line)

        while True:
            described = self._describe(task_id)
            if described is None:
                raise RunnerError(f"task {task_id} is not in cluster {self.place.cluster} (ECS forgets a stopped task "
                                  "after about an hour)")  # fmt: skip
            hear(stream.read())
            if described.get("lastStatus") == "STOPPED":
                break
            if until is not None and until():
                self._followed[task_id] = (stream, heard)
                return None
            if deadline is not None and time.monotonic() > deadline:
                self._followed[task_id] = (stream, heard)
                raise RunnerError(f"task {task_id} still running after {timeout:.0f} s")
            time.sleep(self.poll)
        grace_end = time.monotonic() + self.log_grace
        while heard.exit_code is None and time.monotonic() < grace_end:
            time.sleep(min(self.poll, self.log_grace))
            hear(stream.read())
        code = heard.exit_code if heard.exit_code is not None else container_exit_code(described, self.place.container)
        return TaskOutcome(task_id, code, str(described.get("stoppedReason") or ""), heard.last_line)

    def stop(self, task_id: str) -> None:
        """``StopTask`` (ECS sends the worker SIGTERM, then SIGKILL after the task's stop timeout); a task that
        already stopped is left alone. :raises RunnerError: ECS could not be asked."""
        if not self.running(task_id):
            return
        with aws_errors(f"ECS StopTask {task_id_of(task_id)} in cluster {self.place.cluster}"):
            self._ecs.stop_task(cluster=self.place.cluster, task=task_id, reason=STOP_REASON)
