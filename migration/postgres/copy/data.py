"""Data phase: each part streamed ``COPY … TO STDOUT`` → ``COPY … FROM STDIN``.

Rows pass through memory in batches; nothing is written to disk. A whole-table part
truncates its table and loads it with ``FREEZE`` in one transaction, together with its
done marker.
"""

from __future__ import annotations

import fcntl
import os
import select
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import pq

from migration.children import RunningChildren, die_with_parent
from migration.crashpoints import crashpoint
from migration.errors import DatabaseError, FerryError, SourceChangedError, UsageError
from migration.postgres.catalog import Conn, TableInfo
from migration.postgres.connection import connect, pg_errors, translate
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.copy.copylock import COPY_APPLICATION_NAME
from migration.postgres.copy.plan import Part
from migration.postgres.copy.share import claim_next, record_copier
from migration.postgres.copy.snapshot import SourceSnapshot, begin_in_snapshot
from migration.postgres.copy.state import part_marker_sql
from migration.redact import redact

__all__ = ["ClaimedPart", "PartResult", "WorkerConnections", "copy_claimed_part", "copy_part", "open_target_session"]

_BATCH_BYTES = 1 << 20
# Below this a psql child costs more to start than it saves.
PSQL_READER_MIN_BYTES = 8 << 20
_F_SETPIPE_SZ = 1031
ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PartResult:
    part: Part
    rows: int
    bytes: int
    seconds: float


def open_target_session(target: PgEndpoint, owner: str | None, *, autocommit: bool = True) -> Conn:
    """A target connection set up for bulk loading (and owned objects, with ``--owner``)."""
    conn = connect(target, autocommit=autocommit, application_name=COPY_APPLICATION_NAME)
    with pg_errors("target", target):
        conn.execute("SET synchronous_commit = off")
        # A session whose ferry died stops at its next check instead of finishing (and committing) its work.
        conn.execute(
            "SELECT pg_catalog.set_config('client_connection_check_interval', '1s', false) "
            "WHERE current_setting('server_version_num')::int >= 140000"
        )
        conn.execute("SET search_path = ''")
        if owner:
            require_owner_role(conn, owner)
            conn.execute(f"SET ROLE {psycopg.sql.Identifier(owner).as_string()}")
    return conn


def require_owner_role(conn: Conn, owner: str) -> None:
    """:raises UsageError: when ``--owner`` names a role that is missing or not ours to use."""
    row = conn.execute(
        "SELECT pg_has_role(current_user, oid, 'MEMBER') FROM pg_catalog.pg_roles WHERE rolname = %s", (owner,)
    ).fetchone()
    if row is None:
        raise UsageError(f"--owner {owner}: no such role on the target", side="target")
    if not row[0]:
        raise UsageError(f"--owner {owner}: the target user is not a member of that role", side="target")


class WorkerConnections:
    """One source connection (inside the snapshot) and one target connection per thread."""

    def __init__(
        self, source: PgEndpoint, target: PgEndpoint, snapshot: SourceSnapshot, owner: str | None, psql: Path | None
    ) -> None:
        self.source, self.target, self.snapshot, self._owner = source, target, snapshot, owner
        self.psql = psql
        self._local = threading.local()
        self._all: list[Conn] = []
        #: The psql children streaming parts (:func:`copy_part`).
        self.children = RunningChildren()
        self._lock = threading.Lock()

    def cancel(self) -> None:
        """Stop every running COPY: cancel the connections, kill the psql children."""
        with self._lock:
            conns = list(self._all)
        for conn in conns:
            with suppress(Exception):
                conn.cancel_safe(timeout=5)
        self.children.kill()

    def pair(self) -> tuple[Conn, Conn]:
        pair: tuple[Conn, Conn] | None = getattr(self._local, "pair", None)
        if pair is None or pair[0].closed or pair[1].closed:
            src = connect(self.source, autocommit=True)
            with pg_errors("source", self.source):
                begin_in_snapshot(src, self.snapshot)
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


def copy_part(
    conns: WorkerConnections, table: TableInfo, part: Part, on_progress: ProgressCallback, *, binary: bool
) -> PartResult:
    """Copy one part and mark it done, in one target transaction.

    :param binary: move rows in COPY's binary format (cheaper to write and parse for
        numbers and timestamps); only for binary-safe tables between equal major versions.
    """
    src, dst = conns.pair()
    with pg_errors("target", conns.target), dst.transaction():
        result = _load_part(conns, src, dst, table, part, on_progress, binary=binary)
        crashpoint("part-loading")
    crashpoint("part-copied")
    return result


#: A claimed part's key → the part, its table, and whether it travels in binary.
ClaimedPart = Callable[[str], tuple[Part, TableInfo, bool]]


def copy_claimed_part(
    conns: WorkerConnections,
    prepare: ClaimedPart,
    on_progress: ProgressCallback,
    copier: str,
    crash_step: str = "part-loading",
) -> PartResult | None:
    """Claim the next part of a shared copy, copy it and mark it done, in one target transaction.

    Returns ``None`` when no part is left to claim (every part done, or held by another session).
    See :mod:`migration.postgres.copy.share`.

    :param prepare: called with the claimed part's key, inside the transaction.
    :param copier: who copies (recorded with the part).
    :param crash_step: its crash point inside the transaction (tests tell a helper's from the leader's).
    """
    src, dst = conns.pair()
    with pg_errors("target", conns.target), dst.transaction():
        # The claim reads the markers again after taking its lock: only a new statement's snapshot sees them.
        dst.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        key = claim_next(dst, conns.snapshot.snapshot_id)
        if key is None:
            return None
        part, table, binary = prepare(key)
        result = _load_part(conns, src, dst, table, part, on_progress, binary=binary)
        record_copier(dst, key, copier)
        crashpoint(crash_step)
    crashpoint("part-copied")
    return result


def _load_part(
    conns: WorkerConnections,
    src: Conn,
    dst: Conn,
    table: TableInfo,
    part: Part,
    on_progress: ProgressCallback,
    *,
    binary: bool,
) -> PartResult:
    """Stream *part* from *src* into *dst* and insert its marker, in the caller's target transaction."""
    started = time.monotonic()
    columns = table.column_list
    fmt = "FORMAT binary" if binary else "FORMAT text"
    column_list = f" ({columns})" if columns else ""  # a table may have no columns at all
    if part.predicate:
        query = f"COPY (SELECT {columns} FROM ONLY {part.table} WHERE {part.predicate}) TO STDOUT ({fmt})"
    else:
        query = f"COPY {part.table}{column_list} TO STDOUT ({fmt})"
    load = f"COPY {part.table}{column_list} FROM STDIN ({fmt}{', FREEZE' if part.freeze else ''})"
    # Binary rows carry no newline to count: estimate while streaming, exact at the end.
    bytes_per_row = max(1, table.bytes // max(1, table.est_rows)) if binary else 0
    if conns.psql is not None and part.est_bytes >= PSQL_READER_MIN_BYTES:
        chunks = _psql_chunks(conns, query)
    else:
        chunks = _libpq_chunks(conns, src, query)
    rows = size = 0
    if part.freeze:
        dst.execute(f"TRUNCATE ONLY {part.table}")
    cursor = dst.cursor()
    with cursor.copy(load) as writer:
        for chunk in chunks:
            writer.write(chunk)
            lines = len(chunk) // bytes_per_row if binary else chunk.count(b"\n")
            rows += lines
            size += len(chunk)
            on_progress(part.table, lines, len(chunk))
    if cursor.rowcount >= 0:
        on_progress(part.table, cursor.rowcount - rows, 0)
        rows = cursor.rowcount
    seconds = time.monotonic() - started
    dst.execute(part_marker_sql(), (part.key, rows, size, seconds))
    return PartResult(part, rows, size, seconds)


def _source_error(conns: WorkerConnections, exc: psycopg.Error) -> FerryError:
    return translate(exc, "source", conns.source)


def _libpq_chunks(conns: WorkerConnections, src: Conn, query: str) -> Iterator[bytes]:
    """COPY rows read straight from libpq (psycopg's per-row iteration costs 2x the CPU)."""
    pgconn = src.pgconn
    encoding = src.info.encoding
    pgconn.send_query(query.encode())
    result = pgconn.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        while pgconn.get_result() is not None:
            pass
        raise (
            _source_error(conns, psycopg.errors.error_from_result(result, encoding))
            if result
            else DatabaseError("COPY did not start", side="source")
        )
    batch: list[memoryview] = []
    pending = 0
    while True:
        nbytes, data = pgconn.get_copy_data(1)
        if nbytes > 0:
            batch.append(data)
            pending += nbytes
            if pending >= _BATCH_BYTES:
                yield b"".join(batch)
                batch, pending = [], 0
        elif nbytes == 0:
            select.select([pgconn.socket], [], [])  # waits without holding the GIL
            pgconn.consume_input()
        else:
            break
    if batch:
        yield b"".join(batch)
    final = pgconn.get_result()
    while pgconn.get_result() is not None:
        pass
    if final is not None and final.status != pq.ExecStatus.COMMAND_OK:
        raise _source_error(conns, psycopg.errors.error_from_result(final, encoding))


def _psql_chunks(conns: WorkerConnections, select_sql: str) -> Iterator[bytes]:
    """COPY rows read through a psql child in the snapshot: C reads the rows, Python moves megabytes."""
    assert conns.psql is not None
    args = [
        str(conns.psql), "-X", "-q", "-v", "ON_ERROR_STOP=1",
        "-c", "SET statement_timeout = 0",  # as every session of ferry's (connection.py says why)
        "-c", "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        "-c", f"SET TRANSACTION SNAPSHOT '{conns.snapshot.snapshot_id}'",
        "-c", "SET row_security = off",
        "-c", select_sql,
    ]  # fmt: skip
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=conns.source.child_env(),
        bufsize=0,
        preexec_fn=die_with_parent,
    )
    conns.children.add(proc)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        fd = proc.stdout.fileno()
        with suppress(OSError):  # bigger pipe, fewer wake-ups; Linux only
            fcntl.fcntl(fd, _F_SETPIPE_SZ, _BATCH_BYTES)
        batch: list[bytes] = []
        pending = 0
        while True:
            data = os.read(fd, _BATCH_BYTES)
            if not data:
                break
            batch.append(data)
            pending += len(data)
            if pending >= _BATCH_BYTES:
                yield b"".join(batch)
                batch, pending = [], 0
        if batch:
            yield b"".join(batch)
        stderr = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise _psql_error(stderr)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        conns.children.discard(proc)


def _psql_error(stderr: str) -> FerryError:
    line = next((ln for ln in stderr.splitlines() if "ERROR:" in ln or "FATAL:" in ln), stderr.strip()[-300:])
    message = redact(" ".join(line.split("ERROR:", 1)[-1].split("FATAL:", 1)[-1].split()))
    if "does not exist" in message and "relation" in message:
        return SourceChangedError(f"a table disappeared during the copy: {message}", side="source")
    return DatabaseError(message, side="source")
