"""Child programs that die with ferry.

A ``pg_dump`` or ``psql`` left running after ``kill -9`` of ferry would keep its session
(and on the target, its transaction) alive while a resumed copy starts: the resume could
then meet half-built objects committing under it. On Linux the kernel ends such a child
as soon as its parent dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys
from collections.abc import Callable

__all__ = ["die_with_parent"]

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
