"""The runner a run asked for (``--runner``), made from what the run knows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from migration.errors import UsageError
from migration.runner.base import Runner
from migration.runner.local import LocalRunner

if TYPE_CHECKING:
    from migration.runbook.context import RunContext

__all__ = ["RUNNERS", "runner_for"]

RUNNERS = ("local", "ecs")


def runner_for(ctx: RunContext) -> Runner:
    """:raises UsageError: an unknown runner, or ``ecs`` without a stack that declares one."""
    name = ctx.settings.runner
    if name == "local":
        return LocalRunner(ctx.settings.state_dir / "tasks")
    if name == "ecs":
        if not ctx.settings.uses_stack:
            raise UsageError("--runner ecs runs in the stack's network: it needs the stack (no --target-url)")
        from migration.runner.aws import endpoint_from_env
        from migration.runner.ecs import EcsRunner
        from migration.runner.statestore import StateMirror

        outputs = ctx.stack_outputs().values
        if not outputs.get("stateBucket"):
            raise UsageError(
                f"--runner ecs: stack {ctx.settings.stack} declares no runner (add ferry:runner and `pulumi up`)"
            )
        # The run's state lives in the stack's bucket: the task inside the VPC reads and writes it there.
        ctx.mirror = StateMirror(str(outputs["stateBucket"]), ctx.settings.stack, ctx.config.aws_region,
                                 endpoint_from_env())  # fmt: skip
        return EcsRunner.from_outputs(outputs, region=ctx.config.aws_region, endpoint_url=endpoint_from_env())
    raise UsageError(f"--runner must be one of {', '.join(RUNNERS)}, not {name!r}")
