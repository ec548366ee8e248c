"""What every runner does: start ferry's worker as a task, follow its output, relay how it ended, stop it.

A task is the worker entry point (:data:`TASK_COMMAND`) with one job in ``FERRY_JOB``. The job names no secret:
where it needs a URL or a key it says ``env:NAME``, and the task's environment holds ``NAME`` — an ECS secret
from Secrets Manager in the stack's task, the caller's own value in a local child. The worker's last line says
how it ended (:data:`EXIT_LINE`), so every runner relays the same status, whatever its platform reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["ENV_REF", "EXIT_LINE", "TASK_COMMAND", "TASK_ID_ENV", "Runner", "TaskOutcome", "TaskSpec", "exit_code_of"]

#: The container's command; a local runner runs the same module with this Python.
TASK_COMMAND = ("python", "-m", "migration.worker")
#: The prefix of a job's value that names an environment variable of the task (``env:FERRY_TARGET_DATABASE_URL``).
ENV_REF = "env:"
#: The worker's last line: ``ferry-task: exit 0``.
EXIT_LINE = "ferry-task: exit "
#: Names the task a process runs (its id), in the process's environment (a local runner's).
TASK_ID_ENV = "FERRY_TASK_ID"


@dataclass(frozen=True)
class TaskSpec:
    """One task to run.

    :param name: what it does, for people (``copy``, ``catch-up..verify``); tags and log lines carry it.
    :param job: the job's JSON (``FERRY_JOB``): no secret in it, only ``env:NAME`` references.
    :param secrets: environment variable → the secret's reference (an ECS runner: its ARN; a local runner:
        its value, which goes into the child's environment and nowhere else).
    """

    name: str
    job: str
    secrets: Mapping[str, str] = field(default_factory=dict)

    @property
    def environment(self) -> dict[str, str]:
        """The task's plain (non-secret) environment."""
        return {"FERRY_JOB": self.job}


@dataclass(frozen=True)
class TaskOutcome:
    """How a task ended.

    :param exit_code: the worker's exit status (its last line's, else what the platform reports); ``None``
        when it was stopped before it could say (``ferry run`` starts it again).
    :param reason: the platform's word when it stopped the task (``Task stopped by user``, out of memory).
    """

    task_id: str
    exit_code: int | None
    reason: str = ""
    last_line: str = ""

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


class Runner(Protocol):
    """Where ferry's data-plane tasks run: ``local`` (child processes) or ``ecs`` (Fargate tasks)."""

    name: str

    def start(self, spec: TaskSpec) -> str:
        """Start the task; its id (a pid, a task ARN). :raises RunnerError: it could not be started."""
        ...

    def running(self, task_id: str) -> bool:
        """Whether the task is still running (a task never seen, or ended, is not)."""
        ...

    def wait(
        self,
        task_id: str,
        on_line: Callable[[str], None],
        timeout: float | None = None,
        until: Callable[[], bool] | None = None,
    ) -> TaskOutcome | None:
        """Follow the task's output line by line until it ends (its outcome), or until *until* says so while it
        runs (``None``: a later wait goes on showing from where this one stopped).

        :raises RunnerError: *timeout* passed."""
        ...

    def stop(self, task_id: str) -> None:
        """Ask the task to stop (SIGTERM; the worker ends its job as it would choose)."""
        ...


def exit_code_of(lines: list[str]) -> int | None:
    """The exit status the worker's last line states, if it stated one."""
    for line in reversed(lines):
        if line.startswith(EXIT_LINE):
            try:
                return int(line.removeprefix(EXIT_LINE).strip())
            except ValueError:
                return None
    return None
