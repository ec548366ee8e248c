"""Named crash points, for the tests that kill a copy at every step.

``FERRY_CRASH_AT=step`` (or ``step:N`` for its N-th passage) makes the process kill
itself with SIGKILL when it reaches that step, exactly as ``kill -9`` would: no
``finally`` block, no atexit handler, no flushed buffer runs. Unset, a crash point costs
one dictionary lookup. Only the test suite sets it.

``FERRY_FAIL_AT=step`` (or ``step@scope``: a move's) makes :func:`failpoint` raise an ordinary error there
instead, as a phase that fails does: what the run does after a failure is tested with it (the rehearsal's
``--fail-move``).
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["crashpoint", "failpoint"]

_counts: dict[str, int] = {}
_lock = threading.Lock()


def crashpoint(step: str) -> None:
    """Die here, as by ``kill -9``, when ``FERRY_CRASH_AT`` names *step*."""
    wanted = os.environ.get("FERRY_CRASH_AT")
    if not wanted:
        return
    name, _, nth = wanted.rpartition(":")
    if not nth.isdigit():  # a step's own name may hold a colon (``phase-back:freeze``)
        name, nth = wanted, ""
    if name != step:
        return
    with _lock:
        _counts[step] = _counts.get(step, 0) + 1
        if _counts[step] >= int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)


def failpoint(step: str, scope: str | None = None) -> None:
    """Fail here, as a phase does, when ``FERRY_FAIL_AT`` names *step* (and *scope*, if it names one).

    :raises RunbookError: the injected failure."""
    wanted = os.environ.get("FERRY_FAIL_AT")
    if not wanted:
        return
    name, _, where = wanted.partition("@")
    if name == step and (not where or where == scope):
        from migration.errors import RunbookError

        raise RunbookError(f"a failure injected at {step} (FERRY_FAIL_AT)")
