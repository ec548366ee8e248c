"""Files other processes read while we write them: replaced in one step, never seen half-written."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["replace_file"]


def replace_file(path: Path, text: str, *, mode: int | None = None, durable: bool = False) -> None:
    """Write *text* beside *path*, then rename it over *path* (atomic on one filesystem).

    :param mode: permissions for the new file (``0o600`` for files holding secrets).
    :param durable: fsync before the rename, so a crash never leaves an empty file behind.
    """
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        if mode is not None:
            os.fchmod(handle.fileno(), mode)
        handle.write(text)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    tmp.replace(path)
