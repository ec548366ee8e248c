"""The follower: ``ferry pg copy --follow`` or ``ferry pg follow``, started, killed, started again,
watched through its status file."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.chaos.ferry_driver import Ferry, error_line


@dataclass
class FollowerRun:
    kind: str
    args: list[str]
    started: float
    log: Path
    proc: subprocess.Popen[bytes]
    killed: bool = False
    exit_code: int | None = None
    applied: int = 0
    error: str | None = None


class Follower:
    """The follower process of one seed; its status file tells when it is live."""

    def __init__(self, ferry: Ferry, source: str, target: str, work: Path, rng: random.Random,
                 batches: list[int], leave_paused: bool) -> None:  # fmt: skip
        self.ferry = ferry
        self.source, self.target = source, target
        self.work = work
        self.rng = rng
        self.batches = batches
        self.leave_paused = leave_paused
        self.status_file = work / "follow-status.json"
        self.runs: list[FollowerRun] = []

    @property
    def current(self) -> FollowerRun | None:
        return self.runs[-1] if self.runs else None

    def _spawn(self, kind: str, args: list[str]) -> FollowerRun:
        self.status_file.unlink(missing_ok=True)
        log = self.work / f"follower-{len(self.runs)}-{kind}.log"
        run = FollowerRun(kind, args, time.time(), log, self.ferry.spawn(args, log))
        self.runs.append(run)
        return run

    def start_copy(self, jobs: int, *, resume: bool = False) -> FollowerRun:
        return self._spawn("copy", ["pg", "copy", "--source", self.source, "--target", self.target, "--jobs",
                                    str(jobs), "--follow", "--status-file", str(self.status_file),
                                    *(["--resume"] if resume else [])])  # fmt: skip

    def start_follow(self) -> FollowerRun:
        args = ["pg", "follow", "--source", self.source, "--target", self.target,
                "--status-file", str(self.status_file), "--batch", str(self.rng.choice(self.batches))]  # fmt: skip
        if self.leave_paused:
            args.append("--leave-constraints-paused")
        return self._spawn("follow", args)

    def status(self) -> dict[str, Any] | None:
        run = self.current
        try:
            data = json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return None
        if run is None or float(data.get("at", 0)) < run.started - 1:
            return None
        return dict(data)

    def alive(self) -> bool:
        run = self.current
        return run is not None and run.proc.poll() is None

    def wait(self, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> str:
        """``ok`` once the status satisfies *predicate*, ``exited`` when the process ended, or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.status()
            if status is not None and predicate(status):
                return "ok"
            if not self.alive():
                self._finished()
                return "exited"
            time.sleep(0.05)
        return "timeout"

    def _finished(self) -> None:
        run = self.current
        if run is None or run.exit_code is not None:
            return
        run.exit_code = run.proc.wait()
        status = self.status()
        if status is not None:
            run.applied = int(status.get("applied", 0))
        if not run.killed:
            run.error = error_line(run.log.read_text(errors="replace"))

    def kill(self) -> None:
        run = self.current
        assert run is not None
        status = self.status()
        run.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.proc.pid, signal.SIGKILL)  # the follower and any psql child of its copy
        run.exit_code = run.proc.wait()
        if status is not None:
            run.applied = int(status.get("applied", 0))

    def stop(self, timeout: float = 180) -> None:
        """SIGTERM: the follower applies one last batch and ends."""
        run = self.current
        if run is None or run.exit_code is not None:
            return
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)
            try:
                run.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                run.error = f"the follower did not stop within {timeout:.0f} s of SIGTERM (killed)"
                self.kill()
                run.killed = False
                return
        self._finished()

    @property
    def kills(self) -> int:
        return sum(r.killed for r in self.runs)

    @property
    def applied(self) -> int:
        return sum(r.applied for r in self.runs)

    def errors(self) -> list[str]:
        return [f"{r.kind}#{i}: {r.error}" for i, r in enumerate(self.runs) if r.error]
