"""The copy's scratch directory (the schema dump and its restore lists), and what killed copies left.

A ``kill -9`` runs no cleanup, so a killed copy's directory stays in the temporary directory. Its
name carries the pid of the copy that made it: each new copy removes those whose process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["remove_orphans", "schema_workdir"]

_PREFIX = "ferry-schema-"
_NAME = re.compile(rf"^{_PREFIX}(\d+)-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process: alive, and its directory is not ours to remove anyway
    return True


def remove_orphans(parent: Path | None = None) -> list[Path]:
    """Remove the scratch directories of copies that are no longer running; returns them.

    :param parent: where to look (the temporary directory by default).
    """
    removed: list[Path] = []
    root = Path(parent or tempfile.gettempdir())
    try:
        entries = list(root.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid() or _alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed.append(entry)
    return removed


@contextmanager
def schema_workdir() -> Iterator[Path]:
    """A new scratch directory named after this process, removed when the block ends.

    Directories that killed copies left behind are removed first.
    """
    remove_orphans()
    with tempfile.TemporaryDirectory(prefix=f"{_PREFIX}{os.getpid()}-") as path:
        yield Path(path)
