"""Rendering reports for people: tables of differences and checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from migration.redact import redact

if TYPE_CHECKING:  # annotations only: each command imports just its own store's code
    from migration.postgres import VerifyReport
    from migration.preflight import PreflightReport
    from migration.redis.verify import RedisVerifyReport
    from migration.s3 import S3VerifyReport


def _console() -> Console:
    # Wide when piped, so CI logs keep whole names and values.
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _verdict(console: Console, summary: str, headers: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    """``identical: …``, or a table of (at most 200) differences and ``DIFFERENT: …``."""
    if not rows:
        console.print(f"identical: {summary}")
        return
    table = Table(*headers, title=f"{len(rows)} differences")
    for row in rows[:200]:
        table.add_row(*(redact(cell) for cell in row))
    console.print(table)
    console.print(f"DIFFERENT: {summary}")


def show_differences(report: VerifyReport, console: Console | None = None) -> None:
    summary = (
        f"{report.tables_checked} tables, {report.rows_checked} rows, {report.ranges_checked} ranges "
        f"checked ({report.mode}) in {report.seconds:.1f} s"
    )
    rows = [(d.kind, d.name, d.source, d.target) for d in report.differences]
    console = console or _console()
    for note in report.notes:
        console.print(f"note: {note}")
    _verdict(console, summary, ("kind", "object", "source", "target"), rows)


_MARK = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}


def show_checks(report: PreflightReport, console: Console | None = None) -> None:
    console = console or _console()
    table = Table("check", "result", "detail", title="preflight")
    for check in report.checks:
        table.add_row(check.name, _MARK[check.status], redact(check.detail))
    console.print(table)
    console.print("the copy should work" if report.ok else "the copy would fail: fix the checks marked FAIL")


def show_redis_differences(report: RedisVerifyReport, console: Console | None = None) -> None:
    console = console or _console()
    counts = Table("database", "source keys", "target keys", title="keys per database")
    for db, (src, dst) in sorted(report.databases.items()):
        counts.add_row(f"db{db}", str(src), str(dst))
    console.print(counts)
    scope = f"a sample of {report.sample} keys per database" if report.sample else "every key"
    summary = f"{report.keys_checked} keys checked ({scope}) in {report.seconds:.1f} s"
    rows = [(d.kind, str(d.db), d.key, d.source, d.target) for d in report.differences]
    _verdict(console, summary, ("kind", "db", "key", "source", "target"), rows)


def show_s3_differences(report: S3VerifyReport, console: Console | None = None) -> None:
    summary = (
        f"{report.source_objects} source objects ({report.source_bytes} bytes), {report.target_objects} target "
        f"objects, in {report.seconds:.1f} s"
    )
    rows = [(d.kind, d.key, d.source, d.target) for d in report.differences]
    _verdict(console or _console(), summary, ("kind", "key", "source", "target"), rows)
