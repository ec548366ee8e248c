"""``ferry status``: where a stack's run stands, read from its state, its workers and its targets.

It changes nothing and takes no lock (a run may hold it): the phases done and the next one, whether the
app is frozen or on the new stores (and since when), each store's background copy (running or not, how
far behind it last said it was), and what the targets have taken since the switch.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from migration.errors import FerryError
from migration.runbook.context import RunSettings
from migration.runbook.follower import Follower
from migration.runbook.run import PHASE_NAMES, RunReport, open_context
from migration.runbook.stores import AnyStore, StoreRun, moved_stores
from migration.runbook.tasks import keeper_of, open_runner, task_status

__all__ = ["StatusReport", "StoreStatus", "status"]


@dataclass(frozen=True)
class StoreStatus:
    """One moved store: its background copy and the writes its target took since the switch.

    :param follower: ``running``, ``stopped`` or ``none`` (it never had one, or it was drained).
    :param said: what the copy last wrote of itself (phase, queued, seconds behind), and how long ago.
    :param writes_since_switch: counted by the target itself (``None``: not switched, or not counted).
    """

    name: str
    follower: str
    pid: int | None = None
    said: dict[str, Any] = field(default_factory=dict)
    writes_since_switch: int | None = None
    #: The follow back (from the switch until ``finish``): its worker, as ``follower``; ``None``: none began.
    back: dict[str, Any] | None = None


@dataclass
class StatusReport:
    """A run's standing; ``to_json()`` is the ``--json`` answer, ``lines()`` the one for people."""

    stack: str
    started: bool
    next_phase: str | None
    frozen: bool
    switched_seconds_ago: float | None
    rolled_back: bool
    stores: list[StoreStatus]
    #: ``ferry finish`` ran: the follow back ended, and a rollback would leave the writes since behind.
    finished: bool
    run: RunReport
    #: A data-plane task of the run (``--runner``): its runner, id, phases and whether it still runs.
    task: dict[str, Any] | None = None
    #: The task keeping the follow back's workers (``--runner ecs``), when one runs.
    keeper: dict[str, Any] | None = None
    #: The runner the run goes on with (what a hint says to run again with).
    runner: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {key: value for key, value in asdict(self).items() if key not in ("run", "stores")}
        return {**data, "stores": [asdict(s) for s in self.stores], "phases": self.run.to_json()["phases"]}

    def lines(self) -> list[str]:
        if not self.started:
            return [f"stack {self.stack}: no run yet (`ferry run --stack {self.stack}` starts one)"]
        where = "rolled back" if self.rolled_back else f"next phase: {self.next_phase or 'none, the run is over'}"
        app = "frozen" if self.frozen else "writing"
        if self.switched_seconds_ago is not None:
            app = f"writing to the new stores since {self.switched_seconds_ago / 60:.0f} min"
        lines = [f"stack {self.stack}: {where}; the app is {app}"]
        for phase in self.run.phases:
            lines.append(f"  {phase.name:<12} {phase.status:<8} {phase.seconds:8.1f} s")
        for store in self.stores:
            said = ", ".join(f"{k} {v}" for k, v in store.said.items())
            writes = (
                "" if store.writes_since_switch is None else f"; {store.writes_since_switch} writes since the switch"
            )
            pid = f" (pid {store.pid})" if store.pid else ""
            lines.append(f"  {store.name}: follower {store.follower}{pid}{' — ' + said if said else ''}{writes}")
            if store.back is not None:
                back = store.back
                lag = ", ".join(f"{k} {v}" for k, v in back["said"].items())
                log = (
                    f"; its log {back['log_entries']} entries, {back['log_bytes']} bytes" if "log_bytes" in back else ""
                )
                command = f"ferry run --stack {self.stack}" + (f" --runner {self.runner}" if self.runner else "")
                again = f" (`{command}` starts it again)" if back["follower"] == "stopped" else ""
                lines.append(
                    f"  {store.name}: follow back {back['follower']}{again} for {back['seconds'] / 60:.0f} min"
                    + (f" — {lag}" if lag else "")
                    + log
                )
        if self.finished:
            lines.append("  finished: the follow back ended; a rollback would leave the writes since behind")
        if self.keeper is not None:
            lines.append(f"  follow back kept by task {self.keeper['id']} ({self.keeper['runner']}): running")
        if self.task is not None:
            task = self.task
            goes_on = (f" (`ferry run --stack {self.stack} --runner {task['runner']}` waits for it)"
                       if task["running"] else "")  # fmt: skip
            lines.append(f"  task {task['id']} ({task['runner']}, {'..'.join(task['phases'])}): "
                         f"{'running' if task['running'] else 'ended'}{goes_on}")  # fmt: skip
        return lines


def status(settings: RunSettings) -> StatusReport:
    """Where *settings*' stack's run stands; nothing is written anywhere.

    :raises FerryError: the stack file or the state file cannot be read.
    """
    ctx = open_context(settings, say=lambda _line: None, confirm=lambda _question: False)
    try:
        keeper = None
        if settings.runner:
            # The run's state as its tasks left it (under ecs: in the stack's bucket), and who keeps the follow back.
            runner = open_runner(ctx)
            kept_by = keeper_of(ctx, runner)
            keeper = {"runner": runner.name, "id": kept_by, "running": True} if kept_by else None
        state = ctx.state
        next_phase = next((name for name in PHASE_NAMES if not state.done(name)), None)
        switch = state.phases.get("switch")
        switched = switch is not None and state.done("switch") and not state.rolled_back
        forward = moved_stores(ctx, back=False)
        stores = [_store_status(store, run, switched) for store, run in forward] if state.phases else []
        if settings.runner == "ecs":
            # The workers run in tasks, where this process sees no pid: what the state and the keeper say.
            stores = [_in_tasks(store, keeper is not None) for store in stores]
        return StatusReport(
            stack=settings.stack,
            started=bool(state.phases),
            next_phase=next_phase,
            # After the switch a read-only or fenced freeze stays on the old stores only: the app writes.
            frozen=state.frozen and not switched,
            switched_seconds_ago=round(time.time() - switch.started_at - switch.seconds, 1)
            if switch is not None and switched
            else None,
            rolled_back=state.rolled_back,
            stores=stores,
            finished=state.finished,
            run=RunReport.of(state),
            task=task_status(ctx),
            keeper=keeper,
            runner=settings.runner,
        )
    finally:
        ctx.close()


def _in_tasks(store: StoreStatus, kept: bool) -> StoreStatus:
    follower = "in a task" if store.follower != "none" else "none"
    back = store.back
    if back is not None:
        back = {**back, "follower": "kept by its task" if kept else "stopped", "pid": None}
    return replace(store, follower=follower, pid=None, back=back)


def _said(follower: Follower) -> dict[str, Any]:
    last = follower.status()
    if last is None:
        return {}
    return {
        "phase": last.phase,
        "queued": last.queued,
        "seconds_behind": last.seconds_behind,
        "said_seconds_ago": round(max(0.0, time.time() - last.at), 1),
    }


def _worker_state(follower: Follower) -> str:
    return "running" if follower.alive() else ("stopped" if follower.pid is not None else "none")


def _back_status(store: AnyStore, run: StoreRun[Any, Any, Any]) -> dict[str, Any] | None:
    since = run.state.back_since
    if since is None:
        return None
    back = run.reversed()
    follower = back.follower()
    running = follower.alive()
    try:
        log = store.back_log(back)
    except FerryError:
        log = {}
    return {
        "follower": _worker_state(follower),
        "pid": follower.pid if running else None,
        "seconds": round(max(0.0, time.time() - since), 1),
        "said": _said(follower),
        **log,
    }


def _store_status(store: AnyStore, run: StoreRun[Any, Any, Any], switched: bool) -> StoreStatus:
    follower = run.follower()
    said = _said(follower)
    running = follower.alive()
    state = _worker_state(follower)
    writes = None
    if switched and run.state.writes_at_switch is not None:
        try:
            now = store.target_writes(run)
        except FerryError:
            now = None
        if now is not None and now >= run.state.writes_at_switch:
            writes = now - run.state.writes_at_switch
    return StoreStatus(store.name, state, follower.pid if running else None, said, writes, _back_status(store, run))
