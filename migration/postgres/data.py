"""Data phase: each part streamed ``COPY … TO STDOUT`` → ``COPY … FROM STDIN``.

Rows pass through memory in batches; nothing is written to disk. A whole-table part
truncates its table and loads it with ``FREEZE`` in one transaction, together with its
done marker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.plan import Part
from migration.postgres.snapshot import SourceSnapshot, begin_in_snapshot
from migration.postgres.state import part_marker_sql

__all__ = ["PartResult", "WorkerConnections", "copy_part", "open_target_session"]

_BATCH_BYTES = 1 << 20
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PartResult:
    part: Part
    rows: int
    bytes: int
    seconds: float


def open_target_session(target: PgEndpoint, owner: str | None, *, autocommit: bool = True) -> Conn:
    """A target connection set up for bulk loading (and owned objects, with ``--owner``)."""
    conn = connect(target, autocommit=autocommit)
    with pg_errors("target", target):
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET search_path = ''")
        if owner:
            conn.execute(f"SET ROLE {psycopg.sql.Identifier(owner).as_string()}")
    return conn


class WorkerConnections:
    """One source connection (inside the snapshot) and one target connection per thread."""

    def __init__(self, source: PgEndpoint, target: PgEndpoint, snapshot: SourceSnapshot, owner: str | None) -> None:
        self.source, self.target, self._snapshot, self._owner = source, target, snapshot, owner
        self._local = threading.local()
        self._all: list[Conn] = []
        self._lock = threading.Lock()

    def pair(self) -> tuple[Conn, Conn]:
        pair: tuple[Conn, Conn] | None = getattr(self._local, "pair", None)
        if pair is None or pair[0].closed or pair[1].closed:
            src = connect(self.source, autocommit=True)
            with pg_errors("source", self.source):
                begin_in_snapshot(src, self._snapshot)
            dst = open_target_session(self.target, self._owner)
            pair = (src, dst)
            self._local.pair = pair
            with self._lock:
                self._all += [src, dst]
        return pair

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


def copy_part(conns: WorkerConnections, table_columns: str, part: Part, on_progress: ProgressCallback) -> PartResult:
    """Copy one part and mark it done, in one target transaction."""
    src, dst = conns.pair()
    started = time.monotonic()
    if part.predicate:
        select = f"COPY (SELECT {table_columns} FROM ONLY {part.table} WHERE {part.predicate}) TO STDOUT"
    else:
        select = f"COPY {part.table} ({table_columns}) TO STDOUT"
    load = f"COPY {part.table} ({table_columns}) FROM STDIN" + (" WITH (FREEZE)" if part.freeze else "")
    with pg_errors("target", conns.target), dst.transaction():
        if part.freeze:
            dst.execute(f"TRUNCATE ONLY {part.table}")
        with dst.cursor().copy(load) as writer:
            rows, size = _pump(conns, src, select, writer, part.table, on_progress)
        seconds = time.monotonic() - started
        dst.execute(part_marker_sql(), (part.key, rows, size, seconds))
    return PartResult(part, rows, size, seconds)


def _pump(
    conns: WorkerConnections, src: Conn, select: str, writer: psycopg.Copy, table: str, on_progress: ProgressCallback
) -> tuple[int, int]:
    """Stream the source's COPY output into *writer* in batches; errors name their side."""
    rows = size = 0
    batch: list[bytes | bytearray | memoryview] = []
    pending = 0

    def flush() -> None:
        nonlocal rows, size, batch, pending
        chunk = b"".join(batch)
        with pg_errors("target", conns.target):
            writer.write(chunk)
        lines = chunk.count(b"\n")
        rows += lines
        size += pending
        on_progress(table, lines, pending)
        batch, pending = [], 0

    with pg_errors("source", conns.source), src.cursor().copy(select) as reader:
        for data in reader:
            batch.append(data)
            pending += len(data)
            if pending >= _BATCH_BYTES:
                flush()
        if batch:
            flush()
    return rows, size
