"""Phase ``provision``: ``pulumi up`` for the stack, unless the target was given as URLs."""

from __future__ import annotations

from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome, done, skipped

__all__ = ["provision"]


def provision(ctx: RunContext) -> PhaseOutcome:
    if not ctx.settings.uses_stack:
        return skipped("target given as URLs")
    outputs = ctx.stack_outputs(ctx.infra.up(f"ferry run: provision {ctx.settings.stack}"))
    return done(f"stack {ctx.settings.stack} up: {outputs.values.get('databaseEndpoint', '?')}")
