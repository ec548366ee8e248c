"""Where ferry's data-plane tasks run: child processes here (``local``) or Fargate tasks in the stack's
private subnets (``ecs``), behind one interface (:class:`Runner`).

Error tree: everything here raises :class:`~migration.errors.RunnerError` (a task that could not start,
failed or vanished) or :class:`~migration.errors.ConfigError` (a stack without a runner).
"""

from __future__ import annotations

from migration.runner.base import ENV_REF, EXIT_LINE, TASK_COMMAND, Runner, TaskOutcome, TaskSpec, exit_code_of
from migration.runner.local import LocalRunner

__all__ = [
    "ENV_REF",
    "EXIT_LINE",
    "TASK_COMMAND",
    "LocalRunner",
    "Runner",
    "TaskOutcome",
    "TaskSpec",
    "exit_code_of",
]
