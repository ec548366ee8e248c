"""One run per stack at a time: an exclusive ``flock`` on the state directory's lock file.

The kernel drops the lock when the process dies, so a crashed run never blocks the next one.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from migration.errors import RunbookError

__all__ = ["RunLock"]


class RunLock:
    """:param path: the lock file. :param stack: named in the refusal."""

    def __init__(self, path: Path, stack: str) -> None:
        self.path, self.stack = path, stack
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunbookError(
                f"another ferry run or rollback holds stack {self.stack!r} (pid {holder}); "
                "wait for it to finish, it cannot be run twice at once"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
