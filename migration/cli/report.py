"""Rendering reports for people: tables of differences and checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from migration.redact import redact

if TYPE_CHECKING:  # annotations only: each command imports just its own store's code
    from migration.preflight import PreflightReport
    from migration.verify import VerifyReport


def _console() -> Console:
    # Wide when piped, so CI logs keep whole names and values.
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _verdict(console: Console, summary: str, headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """``identical: …``, or a table of (at most 200) differences and ``DIFFERENT: …``."""
    if not rows:
        console.print(f"identical: {summary}")
        return
    table = Table(
        *headers, title=f"{len(rows)} differences" if len(rows) <= 200 else f"first 200 of {len(rows)} differences"
    )
    for row in rows[:200]:
        table.add_row(*(redact(cell) for cell in row))
    console.print(table)
    console.print(f"DIFFERENT: {summary}")


def show_verify(report: VerifyReport, console: Console | None = None) -> None:
    """Any store's verify report: notes, its own extra table, then the differences and the verdict."""
    console = console or _console()
    for note in report.notes:
        console.print(f"note: {note}")
    databases = report.details().get("databases")
    if databases is not None:
        counts = Table("database", "source keys", "target keys", title="keys per database")
        for db, sides in databases.items():
            counts.add_row(f"db{db}", str(sides["source"]), str(sides["target"]))
        console.print(counts)
    rows = [(d.kind, d.name, d.source, d.target) for d in report.differences]
    summary = report.summary()
    if report.differences_total > len(rows):
        summary += f" ({report.differences_total} differences in all, {len(rows)} listed)"
    _verdict(console, summary, ("kind", "what", "source", "target"), rows)


_MARK = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def show_checks(report: PreflightReport, console: Console | None = None) -> None:
    console = console or _console()
    table = Table("check", "result", "detail", title="preflight")
    for check in report.checks:
        table.add_row(check.name, _MARK[check.status], redact(check.detail))
    console.print(table)
    console.print("the copy should work" if report.ok else "the copy would fail: fix the checks marked FAIL")
