"""Inside a ``--runner`` task: the job's phases run as ``ferry run`` would, and the caller's hand-over awaited.

The job's ``env:NAME`` references are resolved from the task's environment; in a container (its
environment names the state bucket) the stack file, the outputs and the run's state come from the bucket.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from migration.crashpoints import crashpoint
from migration.errors import RunnerError
from migration.runbook.context import RunContext, RunSettings
from migration.runbook.tasks import BACK_STEP, FAILED, HANDOFF, JOB_DATA, RELEASE, WITNESS, reload_state, take_request
from migration.runner import ENV_REF
from migration.runner.aws import endpoint_from_env
from migration.runner.statestore import STATE_BUCKET_ENV, StateMirror
from migration.stackconfig import stack_file
from migration.worker import RunPhasesJob

__all__ = ["resolved", "run_phases_job"]


def resolved(value: Any) -> Any:
    """*value* with its ``env:NAME`` references replaced by the task's environment variables."""
    if isinstance(value, dict):
        return {key: resolved(item) for key, item in value.items()}
    if isinstance(value, list):
        return [resolved(item) for item in value]
    if isinstance(value, str) and value.startswith(ENV_REF):
        name = value.removeprefix(ENV_REF)
        if name not in os.environ:
            raise RunnerError(f"the task has no {name} in its environment (its secret is not set: "
                              "`ferry secrets set` / `pulumi up`)")  # fmt: skip
        return os.environ[name]
    return value


@contextlib.contextmanager
def _checkout(job: RunPhasesJob) -> Iterator[Path]:
    """A project directory holding the job's stack file (the task has no checkout of the project)."""
    with tempfile.TemporaryDirectory(prefix="ferry-task-") as root:
        stack_file(Path(root), job.stack).write_text(job.stack_file)
        yield Path(root)


def run_phases_job(job: RunPhasesJob, say: Callable[[str], None], stop: Callable[[], bool]) -> str:
    """Run the job's phases as ``ferry run`` would (no questions: the caller asked them), waiting idle while
    the caller runs a :data:`HANDOFF` phase.

    :raises FerryError: the first phase that failed (the state records it)."""
    from migration.infra import StackOutputs
    from migration.runbook.back import FINISH, roll_back_after_switch
    from migration.runbook.cutover import witness_switch
    from migration.runbook.phases import run_phase
    from migration.runbook.run import PHASES, after_differences, open_context, release_old_stores

    fields = resolved(job.settings)
    fields["smoke_urls"] = tuple(fields.get("smoke_urls", ()))
    mirror = _mirror(job.stack)
    if job.in_state:
        job = _with_data(job, mirror)
    with _checkout(job) as root:
        # In a container the caller's directory is not there: the state comes from the bucket.
        state_dir = root / "state" if mirror is not None else Path(job.state_dir)
        settings = RunSettings(stack=job.stack, root=root, state_dir=state_dir, **{**fields, "yes": True})
        if mirror is not None:
            mirror.pull(settings.state_file)
        ctx = open_context(settings, say, lambda _question: True)
        ctx.mirror = mirror
        ctx.hand_over = lambda step: _await_caller(ctx, step, stop)
        try:
            if job.outputs is not None:
                ctx.stack_outputs(StackOutputs(values=resolved(job.outputs), secret_keys=frozenset()))
            by_name = {phase.name: phase for phase in PHASES}
            for name in job.phases:
                if name == WITNESS:
                    ctx.say(f"[{WITNESS}] {witness_switch(ctx)}")
                    crashpoint("task-witnessed")
                elif name == RELEASE:
                    ctx.say(f"[{RELEASE}] {release_old_stores(ctx)}")
                elif name in HANDOFF:
                    _await_caller(ctx, name, stop)
                elif name == FINISH.name:
                    run_phase(ctx, FINISH)
                elif name == BACK_STEP:
                    roll_back_after_switch(ctx)
                elif name not in by_name:
                    raise RunnerError(f"the task was asked for phase {name!r}, which this ferry has not")
                else:
                    run_phase(ctx, by_name[name], on_differences=after_differences)
            if job.keep:
                _keep(ctx, stop)
        finally:
            ctx.close()
    return f"phases {', '.join(job.phases)} done"


def _with_data(job: RunPhasesJob, mirror: StateMirror | None) -> RunPhasesJob:
    """*job* with the stack file and outputs its caller left in the state bucket."""
    if mirror is None:
        raise RunnerError(f"the job's stack file is in the state bucket, but the task has no {STATE_BUCKET_ENV}")
    with tempfile.TemporaryDirectory(prefix="ferry-job-") as scratch:
        data = Path(scratch) / JOB_DATA
        if not mirror.pull(data):
            raise RunnerError(f"the state bucket holds no {JOB_DATA} for stack {job.stack} (the caller's)")
        loaded = json.loads(data.read_text())
    return replace(job, stack_file=str(loaded["stack_file"]), outputs=loaded["outputs"], in_state=False)


def _mirror(stack: str) -> StateMirror | None:
    """The state bucket the task's environment names (an ECS task's), if any."""
    bucket = os.environ.get(STATE_BUCKET_ENV)
    if not bucket:
        return None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return StateMirror(bucket, stack, region, endpoint_from_env())


def _await_caller(ctx: RunContext, step: str, stop: Callable[[], bool]) -> None:
    """Say in the state that this task waits for the caller to run *step* (a phase, or a step of one); return
    once the caller has cleared the wait (and, for a phase, recorded it done).

    :raises RunnerError: the caller's *step* failed, or the task was asked to stop."""
    ctx.state.awaiting = step
    ctx.save()
    ctx.say(f"[{step}] waiting for the caller")
    while True:
        reload_state(ctx)
        record = ctx.state.phases.get(step)
        if ctx.state.awaiting is None and (step not in ctx.state.phases or ctx.state.done(step)):
            return
        if record is not None and record.status == "failed":
            raise RunnerError(f"{step} failed on the caller's side: {record.detail}")
        if ctx.state.awaiting == f"{FAILED}{step}":
            raise RunnerError(f"{step} failed on the caller's side")
        if ctx.state.rolled_back:
            raise RunnerError(f"the run was rolled back while this task waited for its {step}")
        if ctx.state.awaiting is None:
            raise RunnerError(f"the caller did not run {step}: stopping here (`ferry run` goes on)")
        if stop():
            raise RunnerError(f"stopped while waiting for the caller's {step}")
        time.sleep(0.02)


def _keep(ctx: RunContext, stop: Callable[[], bool]) -> None:
    """Keep the follow back's workers (this task's processes) until the caller asks for a rollback through
    them or for ``finish`` — each done here, where the workers are — or the task is stopped (they stop too);
    a worker found dead is started again."""
    from migration.runbook.back import FINISH, follow_back, roll_back_after_switch
    from migration.runbook.copy import stop_live_copies
    from migration.runbook.phases import run_phase
    from migration.runbook.stores import moved_stores

    ctx.state.keeper = True
    ctx.save()
    ctx.say("[follow-back] this task keeps the follow back's workers until `ferry rollback` or `ferry finish`")
    try:
        while True:
            request = take_request(ctx)
            if request is not None:
                reload_state(ctx)
                if request == "finish":
                    run_phase(ctx, FINISH)
                else:
                    roll_back_after_switch(ctx)
                return
            if stop():
                workers = [pid for _, run in moved_stores(ctx, back=True) if (pid := run.follower().pid)]
                ctx.say(f"[follow-back] {stop_live_copies(ctx, back=True) or 'nothing to stop'}")
                # They end with this task anyway; ended first, no half-applied batch meets the next keeper's.
                _await_exit(workers, timeout=90.0)
                return
            dead = [
                s.name for s, run in moved_stores(ctx, back=True) if run.follower().pid and not run.follower().alive()
            ]
            if dead:
                ctx.say(f"[follow-back] {', '.join(dead)} stopped: started again: {follow_back(ctx).detail}")
            time.sleep(1.0)
    finally:
        reload_state(ctx)
        ctx.state.keeper = False
        ctx.save()


def _await_exit(pids: list[int], *, timeout: float) -> None:
    """Wait (at most *timeout* seconds) until this task's worker processes *pids* have ended and are reaped."""
    deadline = time.monotonic() + timeout
    left = set(pids)
    while left and time.monotonic() < deadline:
        for pid in list(left):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    left.discard(pid)
            except ChildProcessError:
                left.discard(pid)  # not (or no longer) a child of this task's
        time.sleep(0.1)
