"""Background copies that outlive the phase that starts them, and the runs that check on them.

A store's live copy (a :mod:`migration.worker` job: the live Redis copy, the PostgreSQL follow)
runs as a detached worker process: it keeps following writes between ``ferry run --until copy`` and
the next run, and survives a crash of the run. Its pid is kept in the store's section
of the run state; it reports through a status file (:class:`FollowerStatus`, written
atomically every second) and a log. ``final-sync`` asks it to stop, waits for it to drain,
and reads whether it ended consistent; a follower found dead is the store's cue to copy
again inside the freeze.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from migration.children import runs_with
from migration.errors import FollowerError
from migration.runbook.state import FollowerState
from migration.worker import WORKER_COMMAND, WORKER_MODULE, Job, job_to_json

__all__ = ["Follower", "FollowerStatus"]


@dataclass(frozen=True)
class FollowerStatus:
    """What a follower last said about itself.

    :param phase: ``scan`` (the first full copy), ``live``, ``stopped`` (drained and ended)
        or ``failed``.
    :param queued: changes seen and not yet on the target.
    :param consistent: nothing queued or in flight: the target has every change seen so far.
    :param applied: changes applied since it started (where the follower counts them).
    """

    phase: str
    queued: int
    seconds_behind: float
    consistent: bool
    at: float
    applied: int = 0

    @classmethod
    def read(cls, path: Path) -> FollowerStatus | None:
        """The status in *path*, or ``None`` when there is none yet (or it is not one)."""
        try:
            data = json.loads(path.read_text())
            return cls(
                phase=str(data["phase"]),
                queued=int(data["queued"]),
                seconds_behind=float(data["seconds_behind"]),
                consistent=bool(data["consistent"]),
                at=float(data["at"]),
                applied=int(data.get("applied", 0)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


class Follower:
    """One store's background copy: started, watched, stopped and drained.

    :param name: the store's name; the status and log files are named after it.
    :param state: the store's follower section of the run state (holds the pid).
    :param save: writes the run state (called whenever the pid changes).
    """

    def __init__(self, name: str, state_dir: Path, state: FollowerState, save: Callable[[], None]) -> None:
        self.name = name
        self.status_file = state_dir / f"{name}-live.json"
        self.log_file = state_dir / f"{name}-live.log"
        self._state, self._save = state, save
        self._child: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int | None:
        return self._state.pid

    def alive(self) -> bool:
        pid = self._state.pid
        if pid is None:
            return False
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
            if finished:
                return False
        except ChildProcessError:
            pass  # not our child (a previous run started it): ask the kernel instead
        # Found by what it runs and what for (another stack's worker may hold the number since).
        return runs_with(pid, _WORKER_FOR, str(self.status_file), command_part=WORKER_MODULE)

    def status(self) -> FollowerStatus | None:
        return FollowerStatus.read(self.status_file)

    def last_line(self) -> str:
        """The child's last word, without its own ``ferry: error:`` (the run's line says that once)."""
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1].removeprefix("ferry: error: ") if lines else "no output"

    def start(self, job: Job, *, ready_phase: str, timeout: float) -> int:
        """Start a worker for *job*, detached (its own session), and wait until its status says *ready_phase*.

        The job, secrets and all, goes through the worker's stdin, never its command line or environment.
        :raises FollowerError: it died or never got ready.
        """
        self.launch(job)
        return self.await_ready(ready_phase, timeout)

    def launch(self, job: Job) -> int:
        """Start a worker for *job* without waiting for it (:meth:`await_ready` does)."""
        self.status_file.unlink(missing_ok=True)
        self.status_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            child = subprocess.Popen(
                WORKER_COMMAND, stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True, text=True,
                env={**os.environ, _WORKER_FOR: str(self.status_file)},
            )  # fmt: skip
        assert child.stdin is not None
        with contextlib.suppress(BrokenPipeError), child.stdin:  # a worker that died at once says why below
            child.stdin.write(job_to_json(job))
        self._state.pid = child.pid
        self._save()
        self._child = child
        return child.pid

    def await_ready(self, ready_phase: str, timeout: float) -> int:
        """Wait until the worker's status says *ready_phase*; its pid.

        :raises FollowerError: it died or never got ready."""
        deadline = time.monotonic() + timeout
        while (status := self.status()) is None or status.phase != ready_phase:
            if not self._running():
                self._forget()
                raise FollowerError(f"{self.name} live copy stopped: {self.last_line()}")
            if time.monotonic() > deadline:
                raise FollowerError(f"{self.name} live copy: not {ready_phase} after {timeout:.0f} s")
            time.sleep(0.02 if self._child is not None else 0.2)
        assert self._state.pid is not None
        return self._state.pid

    def _running(self) -> bool:
        if self._child is not None:
            return self._child.poll() is None  # reaped here: a dead child of ours is no zombie taken for alive
        return self.alive()

    def stop(self) -> bool:
        """Ask it to stop, without waiting (rollback). Returns whether one was running."""
        if not self.alive():
            self._forget()
            return False
        assert self._state.pid is not None
        os.kill(self._state.pid, signal.SIGTERM)
        self._forget()
        return True

    def drain(self, timeout: float) -> bool:
        """Ask it to stop, wait until it has drained and ended; whether it ended consistent.

        ``False`` also when no follower was running (it died, or a crash took it).
        :raises FollowerError: it did not end within *timeout* seconds.
        """
        if not self.alive():
            self._forget()
            return False
        pid = self._state.pid
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                raise FollowerError(f"{self.name} live copy (pid {pid}) did not drain in {timeout:.0f} s")
            time.sleep(0.02)  # inside the freeze: every tenth counts
        self._forget()
        status = self.status()
        return status is not None and status.phase == "stopped" and status.consistent

    def _forget(self) -> None:
        if self._state.pid is not None:
            self._state.pid = None
            self._save()


#: Names the worker by what it works for (its status file: this stack's, this store's), not a secret.
_WORKER_FOR = "FERRY_WORKER_FOR"
