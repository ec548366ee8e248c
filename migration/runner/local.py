"""The ``local`` runner: each task is a child process running the container's very command and environment.

It makes the ``ecs`` path rehearsable here (``ferry rehearse --runner local``): the same job in
``FERRY_JOB``, the same secrets as environment variables, the same last line. A child runs in its own session,
so it outlives a caller killed with ``kill -9``; a caller started again finds it by its id (kept in a file next
to its log, and in its environment), never by its process number alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from migration.children import runs_with
from migration.errors import RunnerError
from migration.runner.base import EXIT_LINE, TASK_COMMAND, TASK_ID_ENV, TaskOutcome, TaskSpec, exit_code_of

__all__ = ["LocalRunner"]


class LocalRunner:
    """Tasks as child processes.

    :param work_dir: where each task's log (``<id>.log``) and process number (``<id>.pid``) are kept.
    :param poll: how often (seconds) a wait looks for new output and for the end.
    """

    name = "local"

    def __init__(self, work_dir: Path, poll: float = 0.05) -> None:
        self.work_dir, self.poll = work_dir, poll
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        #: How far each task's log was read and shown (a wait that returned early goes on from there).
        self._read_to: dict[str, tuple[int, bytes, list[str]]] = {}

    def start(self, spec: TaskSpec) -> str:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        task_id = f"local-{time.time_ns()}"
        command = [sys.executable, *TASK_COMMAND[1:]]
        env = {**os.environ, **spec.environment, **spec.secrets, TASK_ID_ENV: task_id}
        try:
            with open(self._log(task_id), "ab") as log:
                child = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                    start_new_session=True,
                )  # fmt: skip
        except OSError as exc:
            raise RunnerError(f"could not start the {spec.name} task: {exc.strerror or exc}") from None
        (self.work_dir / f"{task_id}.pid").write_text(str(child.pid))
        self._children[task_id] = child
        return task_id

    def running(self, task_id: str) -> bool:
        child = self._children.get(task_id)
        if child is not None:
            return child.poll() is None
        pid = self._pid(task_id)
        return pid is not None and runs_with(pid, TASK_ID_ENV, task_id, command_part=TASK_COMMAND[-1])

    def wait(
        self,
        task_id: str,
        on_line: Callable[[str], None],
        timeout: float | None = None,
        until: Callable[[], bool] | None = None,
    ) -> TaskOutcome | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        offset, partial, lines = self._read_to.pop(task_id, (0, b"", []))
        while True:
            ended = not self.running(task_id)
            offset, partial = self._read(task_id, offset, partial, lines, on_line)
            if ended:
                break
            if until is not None and until():
                self._read_to[task_id] = (offset, partial, lines)
                return None
            if deadline is not None and time.monotonic() > deadline:
                self._read_to[task_id] = (offset, partial, lines)
                raise RunnerError(f"task {task_id} still running after {timeout:.0f} s")
            time.sleep(self.poll)
        if partial:
            lines.append(partial.decode(errors="replace"))
            on_line(lines[-1])
        child = self._children.pop(task_id, None)
        code = child.returncode if child is not None else exit_code_of(lines)
        said = [line for line in lines if line.strip() and not line.startswith(EXIT_LINE)]
        reason = "" if code is not None else "the process ended without saying how (killed?)"
        if code is not None and code < 0:
            reason = f"killed by signal {-code}"
            code = None
        return TaskOutcome(task_id, code, reason, said[-1] if said else "")

    def stop(self, task_id: str) -> None:
        pid = self._pid(task_id)
        if pid is not None and self.running(task_id):
            os.kill(pid, signal.SIGTERM)

    def live(self) -> list[str]:
        """The ids of this directory's tasks still running (found by their process's environment)."""
        return sorted(path.stem for path in self.work_dir.glob("local-*.pid") if self.running(path.stem))

    def _log(self, task_id: str) -> Path:
        return self.work_dir / f"{task_id}.log"

    def _pid(self, task_id: str) -> int | None:
        try:
            return int((self.work_dir / f"{task_id}.pid").read_text())
        except (OSError, ValueError):
            return None

    def _read(
        self, task_id: str, offset: int, partial: bytes, lines: list[str], on_line: Callable[[str], None]
    ) -> tuple[int, bytes]:
        try:
            with open(self._log(task_id), "rb") as log:
                log.seek(offset)
                data = log.read()
        except OSError:
            return offset, partial
        *complete, rest = (partial + data).split(b"\n")
        for raw in complete:
            line = raw.decode(errors="replace").rstrip("\r")
            lines.append(line)
            if not line.startswith(EXIT_LINE):
                on_line(line)
        return offset + len(data), rest
