"""Progress reporting: rich bars on a terminal, plain lines elsewhere, nothing for ``--json`` pipes.

Everything goes to stderr, so stdout carries only results (the ``--json`` summary).
All text passes through :func:`migration.redact.redact`.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

from migration.redact import redact

__all__ = ["PhaseTimer", "PlainProgress", "ProgressSink", "RichProgress", "make_progress"]


class ProgressSink(Protocol):
    """What long operations report to."""

    def phase(self, name: str) -> None: ...
    def message(self, text: str) -> None: ...
    def set_total(self, total_bytes: int) -> None: ...
    def start_item(self, key: str, label: str, total_bytes: int, total_rows: int) -> None: ...
    def advance(self, key: str, rows: int, nbytes: int) -> None: ...
    def finish_item(self, key: str, summary: str) -> None: ...
    def close(self) -> None: ...


def _human(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.1f} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1000
    return f"{nbytes:.1f} TB"


class PlainProgress:
    """Plain timestamped lines, and an overall line at most every *interval* seconds."""

    def __init__(
        self, stream: TextIO | None = None, interval: float = 10.0, total_bytes: int = 0, unit: str = "bytes"
    ) -> None:
        self._unit = unit
        self._stream = stream or sys.stderr
        self._interval = interval
        self._lock = threading.Lock()
        self._last = time.monotonic()
        self._started = time.monotonic()
        self._done_bytes = 0
        self._done_rows = 0
        self.total_bytes = total_bytes

    def _write(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        self._stream.write(f"{stamp} {redact(text)}\n")
        self._stream.flush()

    def phase(self, name: str) -> None:
        with self._lock:
            self._write(f"== {name}")

    def message(self, text: str) -> None:
        with self._lock:
            self._write(text)

    def start_item(self, key: str, label: str, total_bytes: int, total_rows: int) -> None:
        return None

    def set_total(self, total_bytes: int) -> None:
        self.total_bytes = total_bytes

    def advance(self, key: str, rows: int, nbytes: int) -> None:
        with self._lock:
            self._done_bytes += nbytes
            self._done_rows += rows
            now = time.monotonic()
            if now - self._last < self._interval:
                return
            self._last = now
            elapsed = now - self._started
            if self._unit != "bytes":
                line = f"progress: {self._done_rows} {self._unit}, {self._done_rows / max(elapsed, 1e-9):,.0f}/s"
                if self._done_bytes:
                    line += f", {_human(self._done_bytes)}"
                if self.total_bytes:
                    share = min(self._done_rows / self.total_bytes, 0.999)
                    eta = elapsed / share - elapsed if share else 0.0
                    line += f", {share:.0%} of ~{self.total_bytes}, ETA {eta:.0f} s"
                self._write(line)
                return
            line = f"progress: {self._done_rows} rows, {_human(self._done_bytes)}"
            if self.total_bytes and self._done_bytes:
                share = min(self._done_bytes / self.total_bytes, 0.999)
                eta = elapsed / share - elapsed
                line += f" of ~{_human(self.total_bytes)} ({share:.0%}), ETA {eta:.0f} s"
            self._write(line)

    def finish_item(self, key: str, summary: str) -> None:
        with self._lock:
            self._write(summary)

    def close(self) -> None:
        return None


def _rate_column(unit: str) -> Any:
    """``12,345 keys/s`` once rich knows the speed."""
    from rich.progress import ProgressColumn, Task
    from rich.text import Text

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            return Text(f"{task.speed:,.0f} {unit}/s" if task.speed else "")

    return RateColumn()


class RichProgress:
    """Bars per active item plus an overall bar, with rows, bytes, rate and ETA."""

    def __init__(self, console: Console | None = None, unit: str = "bytes") -> None:
        # rich loads only when there is a terminal to draw on.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._console = console or Console(stderr=True)
        counts: list[ProgressColumn | str]
        if unit == "bytes":
            counts = [TextColumn("{task.fields[rows]:>12,} rows"), DownloadColumn(), TransferSpeedColumn()]
        else:
            # Counted things (keys): the bar's completed amount is the count itself.
            counts = [MofNCompleteColumn(), _rate_column(unit), TextColumn("{task.fields[moved]}")]
        self._unit = unit
        self._progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            *counts,
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._overall = self._progress.add_task("overall", total=None, rows=0, moved="")
        self._moved = 0
        self._tasks: dict[str, TaskID] = {}
        self._rows: dict[TaskID, int] = {}
        self._lock = threading.Lock()
        self._progress.start()

    def set_total(self, total_bytes: int) -> None:
        self._progress.update(self._overall, total=max(total_bytes, 1))

    def phase(self, name: str) -> None:
        self._progress.console.log(redact(f"== {name}"))

    def message(self, text: str) -> None:
        self._progress.console.log(redact(text))

    def start_item(self, key: str, label: str, total_bytes: int, total_rows: int) -> None:
        with self._lock:
            if key not in self._tasks:
                task = self._progress.add_task(redact(label), total=max(total_bytes, 1), rows=0, moved="")
                self._tasks[key] = task
                self._rows[task] = 0

    def advance(self, key: str, rows: int, nbytes: int) -> None:
        with self._lock:
            task = self._tasks.get(key)
            overall_rows = self._rows.get(self._overall, 0) + rows
            self._rows[self._overall] = overall_rows
            self._moved += nbytes
            if task is not None:
                self._rows[task] += rows
                self._progress.update(task, advance=nbytes if self._unit == "bytes" else rows, rows=self._rows[task])
        moved = _human(self._moved) if self._moved and self._unit != "bytes" else ""
        self._progress.update(
            self._overall, advance=nbytes if self._unit == "bytes" else rows, rows=overall_rows, moved=moved
        )

    def finish_item(self, key: str, summary: str) -> None:
        with self._lock:
            task = self._tasks.pop(key, None)
        if task is not None:
            self._progress.remove_task(task)
        self._progress.console.log(redact(summary))

    def close(self) -> None:
        self._progress.stop()


class _Silent:
    def phase(self, name: str) -> None: ...
    def message(self, text: str) -> None: ...
    def start_item(self, key: str, label: str, total_bytes: int, total_rows: int) -> None: ...
    def set_total(self, total_bytes: int) -> None: ...
    def advance(self, key: str, rows: int, nbytes: int) -> None: ...
    def finish_item(self, key: str, summary: str) -> None: ...
    def close(self) -> None: ...


def make_progress(*, quiet: bool = False, stream: TextIO | None = None, unit: str = "bytes") -> ProgressSink:
    """Rich bars when stderr is a terminal (and not in CI), plain lines otherwise.

    :param unit: ``bytes`` (rows and bytes, ETA from bytes) or a counted thing such as
        ``keys`` (count, rate and ETA from the count).
    """
    import os

    if quiet:
        return _Silent()
    target = stream or sys.stderr
    if target.isatty() and not os.environ.get("CI"):
        from rich.console import Console

        return RichProgress(Console(file=target), unit=unit)
    return PlainProgress(target, unit=unit)


class PhaseTimer:
    """Times each named phase of a copy into *into* (seconds, summed over its passes) and announces it."""

    def __init__(self, progress: ProgressSink, into: dict[str, float]) -> None:
        self._progress, self._into = progress, into

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self._progress.phase(name)
        started = time.monotonic()
        try:
            yield
        finally:
            self._into[name] = self._into.get(name, 0.0) + time.monotonic() - started
