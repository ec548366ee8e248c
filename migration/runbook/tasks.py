"""The runbook's data plane as tasks (``ferry run --runner local|ecs``): the caller keeps the control plane.

The caller — a laptop, a CI job — asks the questions, runs Pulumi (``provision``, ``alias``, ``switch``,
``record``) and checks the app (``smoke``). Every phase that reaches a store — the copy and its follows, the
freeze and the final sync, the verify, the after-switch sync — runs as a task next to the stores: one task
per run of consecutive such phases (a *leg*), so the live copies a leg starts run inside it until the final
sync drains them. The switch stays inside its leg: the task does the switch's work on the stores (the
witnesses once more, the follow back begun), then waits, idle, while the caller moves the app (the hand-over,
``awaiting`` in the state), then unfreezes it: no task starts inside the freeze.

The task is :mod:`migration.worker` with a :class:`~migration.worker.RunPhasesJob`: the stack file's text,
the phases, the run's settings and the stack's outputs, secrets replaced by ``env:NAME`` references that
the task's environment answers (ECS secrets from Secrets Manager; the caller's own values for a local
child). The task's id is kept beside the state (``task.json``, written by the caller alone): a run started
again after a crash waits for a task still running instead of starting a second one, and starts a task for
what a dead one left undone; any other command on the run is kept from running beside it (:func:`guard_task`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from migration.crashpoints import crashpoint
from migration.errors import FerryError, RunbookError, RunnerError
from migration.files import replace_file
from migration.runbook.context import RunContext
from migration.runbook.copyhelpers import end_copy_helpers, start_copy_helpers
from migration.runbook.phases import Phase
from migration.runner import ENV_REF, LocalRunner, Runner, TaskSpec
from migration.runner.aws import endpoint_from_env
from migration.stackconfig import stack_file
from migration.worker import RunPhasesJob, job_to_json

__all__ = [
    "BACK_STEP",
    "CONTROL_PHASES",
    "FAILED",
    "HANDOFF",
    "JOB_DATA",
    "RELEASE",
    "WITNESS",
    "ask_keeper",
    "guard_task",
    "keeper_of",
    "legs",
    "open_runner",
    "reload_state",
    "run_leg",
    "runner_order",
    "take_request",
    "task_status",
]

#: Phases the caller runs itself: Pulumi's, and the app's smoke checks over the internet.
CONTROL_PHASES = frozenset({"provision", "alias", "switch", "settle", "smoke", "record"})
#: The step a leg does right before the switch (:func:`~migration.runbook.cutover.witness_switch`).
WITNESS = "switch:witness"
#: Control phases a leg's task waits for, idle, while the caller runs them (``task.awaiting`` in the state).
HANDOFF = frozenset({"switch"})
#: A rollback's work on the stores (:func:`~migration.runbook.run.release_old_stores`), as a task's step.
RELEASE = "rollback:release"
#: ``awaiting`` set to this and the step: the caller's part of it failed (the waiting task fails too).
FAILED = "failed:"
#: A rollback through the follow back, as a task's step (where no task keeps the follow back's workers).
BACK_STEP = "rollback:back"

#: ``RunSettings`` fields holding secrets → the task's environment variable that carries each instead.
_SECRET_SETTINGS = {
    "target_url": "FERRY_TARGET_DATABASE_URL",
    "target_app_url": "FERRY_TARGET_APP_DATABASE_URL",
    "target_redis_url": "FERRY_TARGET_REDIS_URL",
}
#: Secret stack outputs the task needs → the variable carrying each (the stack's runner secrets).
_SECRET_OUTPUTS = {
    "databaseOwnerUrls": "FERRY_TARGET_DATABASE_URL",
    "redisUrl": "FERRY_TARGET_REDIS_URL",
}
#: The first database's URL the app moves to (``databaseUrls``, or the owner's with ``appRole: owner``).
_APP_URL_ENV = "FERRY_TARGET_APP_DATABASE_URL"
#: Where a job's stack file and outputs wait for an ECS task, in the run's state bucket.
JOB_DATA = "job-data.json"


def open_runner(ctx: RunContext) -> Runner:
    """The run's runner; with ``ecs``, the run's state read from the stack's bucket (where the task writes it)."""
    from migration.runner.choose import runner_for

    runner = runner_for(ctx)
    if ctx.mirror is not None:
        reload_state(ctx)
    return runner


def runner_order(phases: Sequence[Phase]) -> list[Phase]:
    """The phases in the order a ``--runner`` run takes them: ``alias`` (a release while live, Pulumi's) before
    ``copy``, so one task runs from the copy to the unfreeze and its live copies never outlive their task."""
    order = [phase for phase in phases if phase.name != "alias"]
    alias = [phase for phase in phases if phase.name == "alias"]
    at = next((i for i, phase in enumerate(order) if phase.name == "copy"), len(order))
    return order[:at] + alias + order[at:]


def legs(phases: Sequence[Phase]) -> Iterator[tuple[Phase | None, list[str]]]:
    """The selected *phases* as the caller takes them: a control phase alone (``(phase, [])``), or a leg of
    consecutive data phases for one task (``(None, names)``). ``switch`` stays inside its leg, after
    :data:`WITNESS`: the task does the switch's work on the stores, waits while the caller moves the app
    (:data:`HANDOFF`), and unfreezes it — no task starts inside the freeze."""
    leg: list[str] = []
    for phase in phases:
        if phase.name in HANDOFF:
            leg += [WITNESS, phase.name]
        elif phase.name not in CONTROL_PHASES:
            leg.append(phase.name)
        else:
            if leg:
                yield None, leg
                leg = []
            yield phase, []
    if leg:
        yield None, leg


def _job(ctx: RunContext, names: list[str]) -> tuple[RunPhasesJob, dict[str, str]]:
    """The job for a leg, and the secrets it references (environment variable → value)."""
    settings = ctx.settings
    fields = {k: v for k, v in asdict(settings).items() if k not in ("stack", "root", "state_dir", "runner")}
    fields["caller_runner"] = settings.runner
    secrets: dict[str, str] = {}
    for name, env in _SECRET_SETTINGS.items():
        if fields.get(name):
            secrets[env], fields[name] = fields[name], f"{ENV_REF}{env}"
    fields["smoke_urls"] = list(settings.smoke_urls)
    outputs = None
    if settings.uses_stack:
        stack = ctx.stack_outputs()
        outputs = {k: v for k, v in stack.values.items() if k not in stack.secret_keys}
        app_output = "databaseUrls" if ctx.config.migration.app_role == "app" else "databaseOwnerUrls"
        for name, env in [*_SECRET_OUTPUTS.items(), (app_output, _APP_URL_ENV)]:
            if name in stack.values:
                # Only the first database moves: of each map, its URL is the one secret the task is handed.
                first = ctx.config.database.databases[0]
                value = stack.values[name]
                secrets[env] = str(value.get(first, "") if isinstance(value, dict) else value)
                outputs[name if env != _APP_URL_ENV else "databaseUrls"] = (
                    {first: f"{ENV_REF}{env}"} if isinstance(value, dict) else f"{ENV_REF}{env}"
                )
    job = RunPhasesJob(
        stack=settings.stack,
        stack_file=stack_file(settings.root, settings.stack).read_text(),
        phases=names,
        settings=fields,
        state_dir=str(settings.state_dir),
        status_file=settings.state_dir / "task-status.json",
        outputs=outputs,
    )
    return job, secrets


def run_leg(
    ctx: RunContext,
    runner: Runner,
    names: list[str],
    handoff: Callable[[str], None],
    forced: str | None = None,
) -> None:
    """Run the leg *names* as a task of *runner* and wait for it, its output shown as it comes; the run's state
    read again afterwards (the task wrote it). A task of this run still running (the caller was killed) is
    waited for first; what it left undone (it died, or ended) is started again in a new task.

    While a task runs, the run's state is the task's to write; the caller writes it only while the task waits
    for it (``awaiting``). The task's id is kept apart (``task.json``), written by the caller alone.

    :param handoff: runs a :data:`HANDOFF` phase here when the task waits for it.
    :param forced: a phase to run again although done (``--from``).
    :raises FerryError: the task's own error (its last line, its exit code), or :class:`RunnerError`.
    """
    task = _task_record(ctx)
    if task and task.get("runner") == runner.name and runner.running(str(task.get("id"))):
        ctx.say(f"[{'..'.join(task.get('phases') or ['?'])}] task {task['id']} of this run is still running: "
                "waiting for it")  # fmt: skip
        _follow(ctx, runner, str(task["id"]), handoff, keeps=runner.name == "ecs")
    reload_state(ctx)
    names = [name for name in names if name in (forced, WITNESS, RELEASE, BACK_STEP) or not ctx.state.done(name)]
    if not [name for name in names if name != WITNESS]:
        return
    job, secrets = _job(ctx, names)
    # An ECS task's processes end with it: the one that begins the follow back keeps its workers.
    keeps = runner.name == "ecs" and "follow-back" in names and ctx.config.migration.follows_back
    job = replace(job, keep=keeps)
    if keeps:
        # A request a keeper that ended never took is not for this one (it would roll back unasked).
        _write_shared(ctx, _request_file(ctx), None)
    if keeps and ctx.state.keeper:
        ctx.state.keeper = False  # a keeper gone without a word (killed): not this one
        ctx.save()
    ctx.settings.state_dir.mkdir(parents=True, exist_ok=True)  # a CI checkout's first run: nothing here yet
    if ctx.mirror is not None:
        # ECS takes 8 KiB of overrides: the stack file and the outputs go by the state bucket.
        _write_shared(ctx, ctx.settings.state_dir / JOB_DATA, {"stack_file": job.stack_file, "outputs": job.outputs})
        job = replace(job, stack_file="", outputs=None, in_state=True)
    spec = TaskSpec(name=f"{names[0]}..{names[-1]}", job=job_to_json(job), secrets=secrets)
    task_id = runner.start(spec)
    _write_shared(ctx, _task_file(ctx), {"runner": runner.name, "id": task_id, "phases": [names[0], names[-1]]})
    ctx.say(f"[{spec.name}] task {task_id} started ({runner.name})")
    crashpoint("task-started")
    helpers = start_copy_helpers(ctx, runner, names, secrets)
    try:
        _follow(ctx, runner, task_id, handoff, keeps=keeps)
    finally:
        end_copy_helpers(ctx, runner, helpers)


def guard_task(ctx: RunContext, *, stop: bool) -> None:
    """What a run's live task means for a command opening the run (under its lock): a run with the task's
    runner waits for it (in :func:`run_leg`); a rollback or finish (*stop*) stops it first — it would write
    the state beside them; anything else is refused while it runs. A task record ferry cannot read is taken
    for a live task while any task of this run's local runner lives. A ``task.json`` naming no live task is
    cleared, with the hand-over it left (``awaiting``).

    :raises RunbookError: a task of the run still runs, and this command may not run beside it."""
    record = _task_record(ctx)
    unreadable = record is None and _task_file(ctx).exists()
    settings = ctx.settings
    if unreadable:
        local = LocalRunner(settings.state_dir / "tasks")
        live = local.live()
        for task_id in live if stop else []:
            ctx.say(f"task {task_id} of this run still runs: stopping it first")
            local.stop(task_id)
            if local.wait(task_id, lambda line: ctx.say(f"  | {line}"), timeout=300) is None:
                raise RunbookError(f"task {task_id} did not stop")
        if live and not stop:
            raise RunbookError(
                f"{_task_file(ctx)} is not one ferry wrote, and task {live[0]} of stack {settings.stack} still runs: "
                "stop it (`kill` its pid, in tasks/) or wait, then move the file away"
            )
        record = None
    if record is not None:
        runner = _runner_of(ctx, str(record.get("runner")))
        task_id = str(record["id"])
        if runner is not None and runner.running(task_id):
            if settings.runner == runner.name and not stop:
                return  # run_leg waits for it
            if not stop:
                raise RunbookError(
                    f"task {task_id} of stack {settings.stack} still runs ({record.get('runner')}): `ferry run "
                    f"--stack {settings.stack} --runner {record.get('runner')}` waits for it and goes on"
                )
            ctx.say(f"task {task_id} of this run still runs: stopping it first")
            runner.stop(task_id)
            if runner.wait(task_id, lambda line: ctx.say(f"  | {line}"), timeout=300) is None:
                raise RunbookError(f"task {task_id} did not stop")
    if record is not None or unreadable:
        _write_shared(ctx, _task_file(ctx), None)
    reload_state(ctx)
    if ctx.state.awaiting is not None and not _keeper_alive(ctx):
        ctx.state.awaiting = None  # its task is gone: nobody waits for the hand-over any more
        ctx.save()


def task_status(ctx: RunContext) -> dict[str, Any] | None:
    """The run's task as ``ferry status`` tells it (``None``: no task recorded)."""
    record = _task_record(ctx)
    if record is None:
        live = LocalRunner(ctx.settings.state_dir / "tasks").live() if _task_file(ctx).exists() else []
        # The record is not ferry's any more (garbled), but a task of the run still runs: say so.
        return {"runner": "local", "id": live[0], "running": True, "phases": ["?"]} if live else None
    runner = _runner_of(ctx, str(record.get("runner")))
    try:
        running = runner is not None and runner.running(str(record["id"]))
    except FerryError:
        running = False
    phases = record.get("phases")
    return {"runner": str(record.get("runner")), "id": str(record["id"]), "running": running,
            "phases": [str(p) for p in phases] if isinstance(phases, list) else []}  # fmt: skip


def _keeper_alive(ctx: RunContext) -> bool:
    """A task keeping the follow back still runs (it may be waiting for a hand-over of its own)."""
    record = _read_shared(ctx, _keeper_file(ctx))
    runner = _runner_of(ctx, str(record.get("runner"))) if record is not None else None
    try:
        return runner is not None and _kept_by(record, runner) is not None
    except FerryError:
        return True  # cannot tell: keep its wait as it is


def _runner_of(ctx: RunContext, name: str) -> Runner | None:
    """The runner a task record names, to ask after its task (``None``: one this caller cannot reach)."""
    if name == "local":
        return LocalRunner(ctx.settings.state_dir / "tasks")
    if name == "ecs":
        try:
            from migration.runner.ecs import EcsRunner

            return EcsRunner.from_outputs(ctx.stack_outputs().values, region=ctx.config.aws_region,
                                          endpoint_url=endpoint_from_env())  # fmt: skip
        except FerryError:
            return None
    return None


def _read_shared(ctx: RunContext, path: Path) -> dict[str, Any] | None:
    """The JSON object in one of the run's files, as the bucket has it under ecs (``None``: none, or not one)."""
    if ctx.mirror is not None:
        ctx.mirror.pull(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _write_shared(ctx: RunContext, path: Path, record: dict[str, Any] | None) -> None:
    """Write (``None``: remove) one of the run's files, and put it in the bucket under ecs."""
    if record is None:
        path.unlink(missing_ok=True)
    else:
        replace_file(path, json.dumps(record))  # a reader beside it never sees half of it
    if ctx.mirror is not None:
        ctx.mirror.push(path)


def _task_file(ctx: RunContext) -> Path:
    return ctx.settings.state_dir / "task.json"


def _task_record(ctx: RunContext) -> dict[str, Any] | None:
    record = _read_shared(ctx, _task_file(ctx))
    return record if record is not None and isinstance(record.get("id"), str) else None


def _follow(
    ctx: RunContext, runner: Runner, task_id: str, handoff: Callable[[str], None], *, keeps: bool = False
) -> None:
    """Wait for the task to end, running each phase it hands over; raise its error if it failed. *keeps*: the
    task may go on keeping the follow back's workers once its phases are done: then it is the run's keeper
    (``keeper.json``), and the wait ends there."""

    def show(line: str) -> None:
        ctx.say(f"  | {line}")

    def handed_or_kept() -> bool:
        now = _read_shared(ctx, ctx.settings.state_file) or {}
        return _handed_over(now) is not None or (keeps and now.get("keeper") is True)

    while (outcome := runner.wait(task_id, show, until=handed_or_kept)) is None:
        reload_state(ctx)
        step = ctx.state.awaiting
        if step is None:  # kept: its phases are done, it holds the follow back's workers
            _write_shared(ctx, _task_file(ctx), None)
            _write_shared(ctx, _keeper_file(ctx), {"runner": runner.name, "id": task_id})
            return
        try:
            handoff(step)
        except BaseException:
            ctx.state.awaiting = f"{FAILED}{step}"  # the task stops waiting, and fails
            ctx.save()
            raise
        ctx.state.awaiting = None
        ctx.save()
    _write_shared(ctx, _task_file(ctx), None)
    reload_state(ctx)
    if outcome.succeeded:
        return
    if outcome.exit_code is None:
        raise RunnerError(f"task {task_id} stopped before it ended ({outcome.reason or 'no reason given'}): "
                          f"`{ctx.settings.resume_command}` starts it again")  # fmt: skip
    error = RunnerError(outcome.last_line.removeprefix("ferry: error: ") or f"task {task_id} failed")
    error.exit_code = outcome.exit_code
    raise error


def _keeper_file(ctx: RunContext) -> Path:
    return ctx.settings.state_dir / "keeper.json"


def keeper_of(ctx: RunContext, runner: Runner) -> str | None:
    """The id of the task keeping this run's follow back (``--runner ecs``), if it still runs."""
    return _kept_by(_read_shared(ctx, _keeper_file(ctx)), runner)


def _kept_by(record: dict[str, Any] | None, runner: Runner) -> str | None:
    task_id = record.get("id") if record is not None and record.get("runner") == runner.name else None
    return task_id if isinstance(task_id, str) and runner.running(task_id) else None


def _request_file(ctx: RunContext) -> Path:
    return ctx.settings.state_dir / "request.json"


def take_request(ctx: RunContext) -> str | None:
    """Inside the keeper: what the caller asks of it (``rollback``, ``finish``), taken (the file removed).

    A file of its own, the caller's to write and the keeper's to remove: never lost under a save of the state."""
    record = _read_shared(ctx, _request_file(ctx))
    if record is None:
        return None
    _write_shared(ctx, _request_file(ctx), None)
    request = record.get("request")
    return request if request in ("rollback", "finish") else None


def ask_keeper(ctx: RunContext, runner: Runner, request: str, handoff: Callable[[str], None]) -> bool:
    """Ask the run's keeper (where the follow back's workers are) for *request* — ``rollback`` or ``finish`` —
    and follow it until it has done it and ended; ``False``: no keeper runs (the caller does it otherwise)."""
    task_id = keeper_of(ctx, runner)
    if task_id is None:
        _write_shared(ctx, _keeper_file(ctx), None)  # a keeper that ended (stopped, killed): nothing keeps it now
        return False
    _write_shared(ctx, _request_file(ctx), {"request": request})
    ctx.say(f"[{request}] asked of task {task_id}, which keeps the follow back")
    _follow(ctx, runner, task_id, handoff)
    # It ended (a caller interrupted meanwhile leaves the record: the next one finds the keeper again).
    _write_shared(ctx, _keeper_file(ctx), None)
    return True


def _handed_over(state: dict[str, Any]) -> str | None:
    """The step the running task waits for the caller to run, as the state (read as it is now) says."""
    awaiting = state.get("awaiting")
    # A failed hand-over's marker is for the task that waited: nothing for a caller to run.
    return awaiting if isinstance(awaiting, str) and not awaiting.startswith(FAILED) else None


def reload_state(ctx: RunContext) -> None:
    from migration.runbook.state import RunState
    from migration.runbook.stores import STORES

    if ctx.mirror is not None:
        ctx.mirror.pull(ctx.settings.state_file)
    state = RunState.load(ctx.settings.state_file, ctx.settings.stack)
    for store in STORES:
        state.section(store.name, store.section)
    ctx.state = state
