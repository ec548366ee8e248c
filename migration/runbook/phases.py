"""A phase of the runbook, and running one: its start and end written to the state before and after it.

Each phase's record says how long it took and what it did; a phase that failed says so, with how to
resume or roll back, and a phase interrupted by a crash is done again by the next run (phases are
written to be safe to repeat).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from migration.crashpoints import crashpoint, failpoint
from migration.errors import DifferencesFoundError, FerryError
from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome

__all__ = ["Phase", "run_phase"]


@dataclass(frozen=True)
class Phase:
    name: str
    action: Callable[[RunContext], PhaseOutcome]
    #: Asked before, unless --yes: it changes what the app's users see.
    asks: str | None = None


def _hint(ctx: RunContext) -> str:
    stack = ctx.settings.stack + (f" --move {ctx.settings.move}" if ctx.settings.move else "")
    if ctx.state.back:
        return f"`ferry rollback --stack {stack}` tries again; the app stays on the new stores until it succeeds" + (
            "" if ctx.state.done("back:switch") else ", or `--discard-writes-since-switch` goes back without them"
        )
    hint = f"`{ctx.settings.resume_command}` resumes"
    if ctx.state.phases.get("freeze"):
        hint += f", `ferry rollback --stack {stack}` puts the app back"
    return hint


def run_phase(ctx: RunContext, phase: Phase, *, on_differences: Callable[[RunContext], str] = lambda _ctx: "") -> None:
    """Run *phase*, recorded in the state before and after.

    :param on_differences: called when the phase found differences; what it did (it may unfreeze the app).
    :raises FerryError: the phase's, saying how to resume or roll back."""
    ctx.state.start(phase.name)
    ctx.save()
    ctx.say(f"[{phase.name}] started")
    started = time.monotonic()
    try:
        failpoint(f"phase-{phase.name}", ctx.settings.move)
        outcome = phase.action(ctx)
        crashpoint(f"phase-{phase.name}")  # done, not yet recorded: the next run does it again
    except FerryError as exc:
        ctx.state.finish(phase.name, "failed", str(exc), time.monotonic() - started)
        ctx.save()
        if isinstance(exc, DifferencesFoundError) and (did := on_differences(ctx)):
            exc.message += f"; {did}"
        exc.message = f"phase {phase.name} failed: {exc.message} ({_hint(ctx)})"
        raise
    except BaseException:
        ctx.state.finish(phase.name, "failed", "interrupted", time.monotonic() - started)
        ctx.save()
        raise
    ctx.state.finish(phase.name, outcome.status, outcome.detail, time.monotonic() - started)
    ctx.save()
    ctx.say(f"[{phase.name}] {outcome.status} in {time.monotonic() - started:.1f} s: {outcome.detail}")
