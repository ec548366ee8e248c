"""Data phase scheduling: parts on the copy workers, each loaded table's indexes on the index workers.

Parts run biggest critical path first. When a table's last part is in, its index builds
(most expensive first) go to the index pool, then its ANALYZE; the copy workers move on
to the next part meanwhile. Any failure cancels every running COPY and index build.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

from migration.errors import SourceChangedError
from migration.postgres.catalog import Conn, IndexBuild, TableInfo
from migration.postgres.connection import pg_errors
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.copy.data import PartResult, WorkerConnections, copy_part, open_target_session
from migration.postgres.copy.indexes import analyze_table, build_index
from migration.postgres.copy.large_object_copy import copy_large_object_batch, large_object_batches
from migration.postgres.copy.model import CopyOptions, TableResult
from migration.postgres.copy.plan import Part
from migration.postgres.copy.snapshot import SourceSnapshot
from migration.progress import ProgressSink

__all__ = ["DataPhase"]


def _ignore(_result: object) -> None:
    return None


class DataPhase:
    """Runs parts on the copy pool and each finished table's indexes on the index pool."""

    def __init__(
        self,
        options: CopyOptions,
        source: PgEndpoint,
        target: PgEndpoint,
        snapshot: SourceSnapshot,
        tables: list[TableInfo],
        progress: ProgressSink,
        psql: Path | None,
        binary: bool,
    ) -> None:
        self.binary = binary
        self.options, self.target, self.progress = options, target, progress
        self.tables = {t.qualified_name: t for t in tables}
        self.results = {t.qualified_name: TableResult(t.qualified_name) for t in tables}
        self.workers = WorkerConnections(source, target, snapshot, options.owner, psql)
        self.copy_pool = ThreadPoolExecutor(options.jobs, thread_name_prefix="ferry-copy")
        self.index_pool = ThreadPoolExecutor(options.index_jobs or options.jobs, thread_name_prefix="ferry-index")
        self.pending: dict[Future[Any], Callable[[Any], None]] = {}
        self.parts_left: dict[str, int] = {}
        self.indexes_left: dict[str, int] = {}
        self.first_start: dict[str, float] = {}
        self.large_objects: list[tuple[str, list[int]]] = []
        self._index_local = threading.local()
        self._index_conns: list[Conn] = []
        self._lock = threading.Lock()

    def _index_conn(self) -> Conn:
        conn: Conn | None = getattr(self._index_local, "conn", None)
        if conn is None:
            conn = open_target_session(self.target, self.options.owner)
            if self.options.maintenance_work_mem:
                with pg_errors("target", self.target):
                    conn.execute(
                        "SELECT set_config('maintenance_work_mem', %s, false)", (self.options.maintenance_work_mem,)
                    )
            self._index_local.conn = conn
            with self._lock:
                self._index_conns.append(conn)
        return conn

    def submit(self, pool: ThreadPoolExecutor, fn: Callable[[], Any], then: Callable[[Any], None]) -> None:
        self.pending[pool.submit(fn)] = then

    def run(self, parts: list[Part], done: dict[str, tuple[int, int, float]], lo_oids: list[int]) -> None:
        for part in parts:
            if part.table not in self.tables:
                raise SourceChangedError(f"table {part.table} is gone from the source", side="source")
            self.parts_left[part.table] = self.parts_left.get(part.table, 0) + 1
        for part in parts:
            result = self.results[part.table]
            result.parts += 1
            if part.key in done:
                rows, nbytes, seconds = done[part.key]
                result.rows, result.bytes, result.seconds = (
                    result.rows + rows,
                    result.bytes + nbytes,
                    result.seconds + seconds,
                )
                result.resumed_parts += 1
                self._part_done(part.table)
            else:
                self._schedule(part)
        self.large_objects = [
            (f"large-objects#{i}", batch)
            for i, batch in enumerate(large_object_batches(lo_oids))
            if f"large-objects#{i}" not in done
        ]
        self._started()
        try:
            while self.pending or self._elsewhere():
                finished = self._next_finished()
                # In the order they were submitted: when several failed, the first one's error is the cause
                # (a part that fails aborts its worker's snapshot transaction, and the next part on it fails
                # with "current transaction is aborted", which says nothing).
                for future in [pending for pending in self.pending if pending in finished]:
                    then = self.pending.pop(future)
                    then(future.result())
                self._tick()
        except BaseException:
            self.abort()
            raise
        finally:
            self.copy_pool.shutdown(wait=True, cancel_futures=True)
            self.index_pool.shutdown(wait=True, cancel_futures=True)
            self.workers.close()
            for conn in self._index_conns:
                conn.close()

    # The hooks a shared copy (migration.postgres.copy.shared_phase) changes: here, each part is
    # submitted to the copy pool up front and the loop waits for its own work only.

    def _schedule(self, part: Part) -> None:
        self.submit(self.copy_pool, partial(self._copy, part), partial(self._copied, part))

    def _started(self) -> None:
        self._submit_large_objects()

    def _submit_large_objects(self) -> None:
        for key, batch in self.large_objects:
            self.submit(self.copy_pool, partial(self._copy_los, batch, key), _ignore)
        self.large_objects = []

    def _elsewhere(self) -> bool:
        """Whether parts are being copied elsewhere (by a shared copy's helpers) that the loop waits for."""
        return False

    def _next_finished(self) -> set[Future[Any]]:
        finished, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
        return finished

    def _tick(self) -> None:
        return None

    def abort(self) -> None:
        for future in self.pending:
            future.cancel()
        self.workers.cancel()
        for conn in self._index_conns:
            with suppress(Exception):  # best effort while already failing
                conn.cancel_safe(timeout=5)

    def _copy(self, part: Part) -> Any:
        table = self.tables[part.table]
        with self._lock:
            if part.table not in self.first_start:
                self.first_start[part.table] = time.monotonic()
                self.progress.start_item(part.table, part.table, table.bytes, table.est_rows)
        return copy_part(self.workers, table, part, self.progress.advance, binary=self.binary and table.binary_safe)

    def _copied(self, part: Part, result: PartResult) -> None:
        table = self.results[part.table]
        table.rows += result.rows
        table.bytes += result.bytes
        self._part_done(part.table)

    def _part_done(self, name: str) -> None:
        self.parts_left[name] -= 1
        if self.parts_left[name] > 0:
            return
        result = self.results[name]
        if name in self.first_start:
            result.seconds = time.monotonic() - self.first_start[name]
            self.progress.finish_item(
                name, f"copied {name}: {result.rows} rows, {result.bytes} bytes in {result.seconds:.1f} s"
            )
        table = self.tables[name]
        self.indexes_left[name] = len(table.indexes)
        if not table.indexes:
            self.submit(self.index_pool, partial(self._analyze, table), _ignore)
        for index in table.indexes:
            self.submit(
                self.index_pool,
                partial(self._build, table, index),
                partial(self._indexed, table),
            )

    def _indexed(self, table: TableInfo, seconds: float) -> None:
        self.results[table.qualified_name].index_seconds += seconds
        self.indexes_left[table.qualified_name] -= 1
        if self.indexes_left[table.qualified_name] == 0:
            self.submit(self.index_pool, partial(self._analyze, table), _ignore)

    def _build(self, table: TableInfo, index: IndexBuild) -> float:
        return build_index(self._index_conn(), self.target, table, index)

    def _analyze(self, table: TableInfo) -> None:
        analyze_table(self._index_conn(), self.target, table)

    def _copy_los(self, oids: list[int], key: str) -> Any:
        return copy_large_object_batch(self.workers, oids, key)
