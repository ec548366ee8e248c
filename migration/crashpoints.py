"""Named crash points, for the tests that kill a copy at every step.

``FERRY_CRASH_AT=step`` (or ``step:N`` for its N-th passage) makes the process kill
itself with SIGKILL when it reaches that step, exactly as ``kill -9`` would: no
``finally`` block, no atexit handler, no flushed buffer runs. Unset, a crash point costs
one dictionary lookup. Only the test suite sets it.
"""

from __future__ import annotations

import os
import signal
import threading

__all__ = ["crashpoint"]

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
