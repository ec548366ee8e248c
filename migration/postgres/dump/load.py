"""Loading one part of an archive into the target, in one transaction with its done marker.

A table's rows: ``pg_restore -L <its entry> -f -`` writes the entry's ``COPY … FROM stdin;`` and its
rows; the rows stream into the target's ``COPY … FROM STDIN`` through memory (nothing written to
disk), after a ``TRUNCATE`` in the same transaction (so ``FREEZE`` applies, and a resume never meets
half a table), and the part's marker is inserted before the commit: after a ``kill -9`` the table is
either loaded and marked or empty. An entry whose COPY names its partition root (the root routes its
rows, among other entries' in the same partitions) is loaded without ``TRUNCATE`` or ``FREEZE``: its
rows and marker commit together, so a resume skips it, or loads it once. A group of large objects (``BLOB METADATA`` and its ``BLOBS``):
their SQL, run in one transaction with the group's marker.
"""

from __future__ import annotations

import fcntl
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from migration.children import RunningChildren, die_with_parent
from migration.crashpoints import crashpoint
from migration.errors import ToolError
from migration.postgres.catalog import Conn
from migration.postgres.connection import pg_errors
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.copy.state import part_marker_sql
from migration.postgres.copy.tools import ClientTools
from migration.postgres.dump.archive import Archive, ArchiveEntry
from migration.postgres.dump.selection import qualified
from migration.redact import redact

__all__ = ["LoadResult", "load_sql_part", "load_table_data", "stream_rows"]

_READ_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031
# The end of COPY's text rows: a line holding only ``\.`` (a backslash in a value is written ``\\``).
_END = b"\n\\.\n"
_BEGIN_COMMIT = re.compile(r"^(?:BEGIN|COMMIT);\s*$", re.M)
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class LoadResult:
    rows: int
    bytes: int
    seconds: float


def stream_rows(
    tools: ClientTools, archive: Archive, entry: ArchiveEntry, workdir: Path, children: RunningChildren | None = None
) -> Iterator[bytes]:
    """The COPY text rows of *entry*, in chunks, as ``pg_restore`` writes them (its header, the
    ``COPY`` line and the ``\\.`` after the rows left out).

    :raises ToolError: pg_restore failed (the archive is damaged), or wrote no complete COPY.
    """
    listing = workdir / f"data-{entry.dump_id}.list"
    listing.write_text(entry.line + "\n")
    args = [str(tools.pg_restore), f"--use-list={listing}", "--file=-", str(archive.path)]
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ), preexec_fn=die_with_parent
    )
    if children is not None:
        children.add(proc)
    assert proc.stdout is not None and proc.stderr is not None
    fd = proc.stdout.fileno()
    with suppress(OSError):  # a bigger pipe, fewer wake-ups (Linux only)
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _READ_BYTES)
    try:
        window = b""
        while not _copy_line_end(window):
            data = os.read(fd, _READ_BYTES)
            if not data:
                raise _restore_error(proc, entry, "its COPY statement is missing")
            window += data
        start = _copy_line_end(window)
        # The COPY line's newline stays as the window's first byte: an empty table's ``\.`` then matches _END.
        window, sent = window[start - 1 :], 1
        while True:
            at = window.find(_END)
            if at >= 0:
                if at + 1 > sent:
                    yield window[sent : at + 1]
                break
            cut = len(window) - (len(_END) - 1)
            if cut > sent:
                yield window[sent:cut]
                window, sent = window[cut:], 0
            data = os.read(fd, _READ_BYTES)
            if not data:
                raise _restore_error(proc, entry, "its rows end before the end of COPY")
            window += data
        while os.read(fd, _READ_BYTES):  # the dump's closing comments
            pass
        stderr = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise _restore_error(proc, entry, stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if children is not None:
            children.discard(proc)


def _copy_line_end(window: bytes) -> int:
    """Where the rows begin: just after the ``COPY … FROM stdin;`` line (0 while it is not all read)."""
    start = window.find(b"\nCOPY ")
    if start < 0:
        return 0
    end = window.find(b"\n", start + 1)
    return end + 1 if end >= 0 else 0


def _restore_error(proc: subprocess.Popen[bytes], entry: ArchiveEntry, detail: str) -> ToolError:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    assert proc.stderr is not None
    with suppress(OSError, ValueError):
        detail = proc.stderr.read().decode(errors="replace") or detail
    lines = [ln for ln in detail.splitlines() if ln.strip()]
    line = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else detail)
    line = re.sub(r"^pg_restore: (error: )?", "", line.strip())
    return ToolError(f"pg_restore could not read the data of {entry.namespace}.{entry.tag}: {redact(line)}",
                     side="source")  # fmt: skip


def copy_statement(entry: ArchiveEntry, freeze: bool) -> str:
    """The entry's own ``COPY … FROM stdin`` for the target, with ``FREEZE`` when the table was truncated."""
    statement = entry.copy_stmt.strip().rstrip(";").strip()
    return f"{statement} (FREEZE)" if freeze else statement


def load_table_data(
    conn: Conn,
    target: PgEndpoint,
    rows_of: Iterator[bytes],
    entry: ArchiveEntry,
    key: str,
    table: str | None,
    on_progress: ProgressCallback,
) -> LoadResult:
    """Load one TABLE DATA entry into *table* and mark *key* done, in one target transaction.

    :param rows_of: the entry's rows (:func:`stream_rows`).
    :param table: the table its COPY fills, truncated first (then loaded with ``FREEZE``); ``None`` when
        the COPY names another table (``--load-via-partition-root``: the root routes the rows).
    """
    started = time.monotonic()
    rows = size = 0
    with pg_errors("target", target), conn.transaction():
        if table is not None:
            conn.execute(sql.SQL("TRUNCATE ONLY {}").format(qualified(table)))
        cursor = conn.cursor()
        with cursor.copy(copy_statement(entry, table is not None)) as writer:
            for chunk in rows_of:
                writer.write(chunk)
                lines = chunk.count(b"\n")
                rows += lines
                size += len(chunk)
                on_progress(lines, len(chunk))
        if cursor.rowcount >= 0:
            rows = cursor.rowcount
        seconds = time.monotonic() - started
        conn.execute(part_marker_sql(), (key, rows, size, seconds))
        crashpoint("part-loading")
    crashpoint("part-copied")
    return LoadResult(rows, size, seconds)


def load_sql_part(conn: Conn, target: PgEndpoint, sql: list[str], key: str) -> LoadResult:
    """Run the SQL of a group of large objects and mark *key* done, in one target transaction.

    pg_restore writes ``BEGIN;``/``COMMIT;`` around large objects when it writes a script: left out, so the
    objects and their marker commit together.
    """
    started = time.monotonic()
    with pg_errors("target", target), conn.transaction():
        for text in sql:
            conn.execute(_BEGIN_COMMIT.sub("", text))
        seconds = time.monotonic() - started
        conn.execute(part_marker_sql(), (key, 0, sum(len(t) for t in sql), seconds))
        crashpoint("large-objects-loading")
    crashpoint("large-objects")
    return LoadResult(0, sum(len(t) for t in sql), seconds)
