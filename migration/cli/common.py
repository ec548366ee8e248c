"""What every command shares: error reporting, JSON output, sizes."""

from __future__ import annotations

import json
import os
import re
import select
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from migration.errors import FerryError
from migration.progress import ProgressSink, make_progress
from migration.redact import redact

if TYPE_CHECKING:
    from migration.preflight import PreflightReport
    from migration.verify import VerifyReport

P = ParamSpec("P")
R = TypeVar("R")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """``256MB`` → bytes (binary units; ``0`` disables)."""
    match = _SIZE.match(text)
    if not match:
        raise click.BadParameter(f"not a size: {text!r} (try 256MB)")
    unit = (match.group(2) or "").lower()[:1]
    return int(float(match.group(1)) * _UNITS[unit])


json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")


@contextmanager
def progress_display(unit: str = "bytes") -> Iterator[ProgressSink]:
    """The progress display for a command, closed however the command ends."""
    progress = make_progress(unit=unit)
    try:
        yield progress
    finally:
        progress.close()


def print_json(data: Any) -> None:
    click.echo(redact(json.dumps(data, indent=2, default=str)))


def finish_verify(report: VerifyReport, as_json: bool) -> NoReturn:
    """Every verify command's end: the report as JSON or as a table, exit 0 when identical, else 1."""
    if as_json:
        print_json(report.to_json())
    else:
        from migration.cli.report import show_verify  # rich tables: only when one is shown

        show_verify(report)
    sys.exit(0 if report.identical else 1)


def finish_preflight(report: PreflightReport, as_json: bool) -> NoReturn:
    """Every preflight command's end: JSON or a table of checks, exit 0 when the copy would work, else 1."""
    if as_json:
        print_json(report.to_json())
    else:
        from migration.cli.report import show_checks

        show_checks(report)
    sys.exit(0 if report.ok else 1)


#: What a shell reports for a process killed by SIGPIPE (128 + 13), as ``yes | head -1`` ends.
CLOSED_STDOUT_EXIT = 141


def stdout_closed() -> bool:
    """Whether nobody reads stdout any more (``ferry … | head -1`` after head exited).

    A BrokenPipeError may also come from another pipe (a child's stdin): only a pipe on stdout whose
    reader is gone (poll says POLLERR) ends the command quietly.
    """
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _fd, events in poller.poll(0))


def end_on_closed_stdout() -> NoReturn:
    """End quietly, as a Unix tool killed by SIGPIPE does: no traceback, no message.

    stdout is pointed at /dev/null first, or Python's own flush at exit would fail on the closed
    pipe again and print "Exception ignored … BrokenPipeError".
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
    sys.exit(CLOSED_STDOUT_EXIT)


def flush_stdout() -> None:
    """Flush stdout now, while a closed pipe can still end the command quietly (see above)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        end_on_closed_stdout()


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a :class:`FerryError` into one line on stderr and its exit code."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        debug = bool(click.get_current_context().find_root().params.get("debug"))
        try:
            return fn(*args, **kwargs)
        except FerryError as exc:
            if debug:
                traceback.print_exc()
            click.echo(redact(f"ferry: error: {exc}"), err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("ferry: interrupted", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, SystemExit):
            raise
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) and stdout_closed():
                end_on_closed_stdout()
            if debug:
                traceback.print_exc()
            first = (str(exc).strip().splitlines() or [""])[0]
            click.echo(redact(f"ferry: internal error: {type(exc).__name__}: {first} (rerun with --debug)"), err=True)
            sys.exit(3)

    return wrapper
