"""Child programs that die with ferry.

A ``pg_dump`` or ``psql`` left running after ``kill -9`` of ferry would keep its session
(and on the target, its transaction) alive while a resumed copy starts: the resume could
then meet half-built objects committing under it. On Linux the kernel ends such a child
as soon as its parent dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

__all__ = ["RunningChildren", "die_with_parent", "runs_with"]

_PR_SET_PDEATHSIG = 1


def _make() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    prctl = libc.prctl

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    return set_death_signal


#: ``preexec_fn`` for ``subprocess``: the child is killed when ferry dies (``None`` off Linux).
die_with_parent = _make()


def runs_with(pid: int, variable: str, value: str, *, command_part: str | None = None) -> bool:
    """Whether *pid* is a live process of ours, found by what it is — ``variable=value`` in its environment and,
    if given, *command_part* in its command line — not by its number alone: once it is gone (or after a reboot)
    the number may be another process's, which must never be signalled nor waited for. Without ``/proc`` (not
    Linux) the number is all there is to ask."""
    if not Path("/proc/self").exists():
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):  # gone, or another user's: not ours either way
            return False
        return True
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        command = (proc / "cmdline").read_bytes().split(b"\0")
        environment = (proc / "environ").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    if command_part is not None and command_part.encode() not in command:
        return False
    return state not in ("Z", "X") and f"{variable}={value}".encode() in environment


class RunningChildren:
    """The child programs running now (``psql``, ``pg_restore``), from any thread: killed together on abort."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: set[subprocess.Popen[bytes]] = set()

    def add(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.add(proc)

    def discard(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs.discard(proc)

    def kill(self) -> None:
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            with suppress(Exception):
                proc.kill()
