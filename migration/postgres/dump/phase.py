"""The data phase of a restore from an archive: parts on the load workers, each loaded table's
indexes on the index workers, as the live copy's :class:`~migration.postgres.copy.scheduler.DataPhase`
does for parts read from a source.

Parts run biggest first (their size in the archive). When a table is loaded, its indexes go to the
index pool, built in parallel: a primary key or unique constraint as a unique index first
(:func:`split_constraint`), as the live copy builds them; then, one after the other, its constraints
(each ``ALTER TABLE`` locks the table whole: a key attached ``USING INDEX`` takes no time), then its
``ANALYZE``; the load workers move on to the next part meanwhile. Every build is applied in its own
transaction with its done marker (:func:`~migration.postgres.copy.state.mark_entry`), so a resume
builds exactly those not built. Any failure cancels every running COPY, pg_restore child and build.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from psycopg import sql

from migration.crashpoints import crashpoint
from migration.postgres.catalog import Conn
from migration.postgres.connection import pg_errors
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.copy.data import open_target_session
from migration.postgres.copy.model import TableResult
from migration.postgres.copy.plan import Part
from migration.postgres.copy.restore import EntrySQL
from migration.postgres.copy.state import mark_entry
from migration.postgres.dump.selection import qualified
from migration.progress import ProgressSink

__all__ = ["Build", "DumpDataPhase", "PartWork", "Sessions", "split_constraint"]

#: Loads one part on a session: ``(conn, on_progress(rows, nbytes)) -> (rows, bytes)``.
Loader = Callable[[Conn, Callable[[int, int], None]], tuple[int, int]]
_NAME = r'(?:"(?:[^"]|"")+"|[^\s."(),]+)'
# pg_dump's primary key or unique constraint in its plainest form (no INCLUDE, WITH, TABLESPACE, NULLS …).
_KEY = re.compile(
    rf"^ALTER TABLE ONLY (?P<table>{_NAME}\.{_NAME})\s+ADD CONSTRAINT (?P<name>{_NAME}) "
    rf"(?P<kind>PRIMARY KEY|UNIQUE) \((?P<columns>[^()]+)\)(?P<timing>(?: DEFERRABLE(?: INITIALLY DEFERRED)?)?);$"
)


@dataclass(frozen=True)
class Build:
    """One statement of a table's finishing, and its done marker's name."""

    key: str
    sql: str

    @classmethod
    def of(cls, item: EntrySQL) -> Build:
        return cls(item.key, item.sql)


def split_constraint(item: EntrySQL) -> tuple[Build, Build] | None:
    """A primary key or unique constraint as its unique index, built beside the table's other indexes, and the
    ``ADD CONSTRAINT … USING INDEX`` that attaches it (``None``: another form, applied as it is)."""
    statement = " ".join(
        line.strip() for line in item.sql.splitlines() if line.strip() and not line.lstrip().startswith("--")
    )
    match = _KEY.match(statement)
    if match is None:
        return None
    table, name = match["table"], match["name"]
    index = f"CREATE UNIQUE INDEX {name} ON {table} USING btree ({match['columns']});"
    attach = f"ALTER TABLE ONLY {table} ADD CONSTRAINT {name} {match['kind']} USING INDEX {name}{match['timing']};"
    return Build(f"{item.key} (its index)", index), Build(item.key, attach)


@dataclass
class PartWork:
    """What loading one part takes, and what follows it.

    :param table: the table it fills (``ANALYZE``d after its indexes), ``None`` for large objects and for
        rows loaded through a partition root.
    :param archive_bytes: its data's size in the archive (the progress counts these).
    :param through: the partition root its rows are loaded through, if so.
    :param objects: a group of large objects (SQL, no rows).
    :param indexes: its table's indexes (those of its keys among them), built in parallel once it is loaded.
    :param constraints: then its constraints, one after the other.
    """

    load: Loader
    table: str | None
    archive_bytes: int
    indexes: list[Build] = field(default_factory=list)
    constraints: list[Build] = field(default_factory=list)
    through: str | None = None
    objects: bool = False


class Sessions:
    """One target session per thread, set up as the archive's script says (its header), tracked to cancel."""

    def __init__(self, target: PgEndpoint, owner: str | None, header: str, settings: dict[str, str]) -> None:
        self.target, self.owner, self.header, self.settings = target, owner, header, settings
        self._local = threading.local()
        self._all: list[Conn] = []
        self._lock = threading.Lock()

    def get(self) -> Conn:
        conn: Conn | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = open_target_session(self.target, self.owner)
            with self._lock:
                self._all.append(conn)
            with pg_errors("target", self.target):
                if self.header:
                    conn.execute(self.header)
                for name, value in self.settings.items():
                    conn.execute("SELECT pg_catalog.set_config(%s, %s, false)", (name, value))
            self._local.conn = conn
        return conn

    def cancel(self) -> None:
        with self._lock:
            conns = list(self._all)
        for conn in conns:
            with suppress(Exception):  # best effort while already failing
                conn.cancel_safe(timeout=5)

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()


class DumpDataPhase:
    """Runs parts on the load pool and each loaded table's index entries on the index pool."""

    def __init__(
        self,
        loads: Sessions,
        builds: Sessions,
        *,
        jobs: int,
        index_jobs: int,
        progress: ProgressSink,
        abort: Callable[[], None],
        compression_ratio: float,
    ) -> None:
        self.loads, self.builds, self.progress, self._abort = loads, builds, progress, abort
        self.load_pool = ThreadPoolExecutor(jobs, thread_name_prefix="ferry-load")
        self.index_pool = ThreadPoolExecutor(index_jobs, thread_name_prefix="ferry-index")
        self.pending: dict[Future[Any], Callable[[Any], None]] = {}
        self.results: dict[str, TableResult] = {}
        self.indexes_left: dict[str, int] = {}
        self._ratio = compression_ratio

    def run(
        self, parts: list[Part], work: dict[str, PartWork], done: dict[str, tuple[int, int, float]], built: set[str]
    ) -> dict[str, TableResult]:
        """Load every part not in *done*, then (as each table is in) build its entries not in *built*."""
        for part in parts:
            result = self.results.setdefault(part.table, TableResult(part.table))
            result.parts += 1
            item = work[part.key]
            if part.key in done:
                rows, nbytes, seconds = done[part.key]
                result.rows, result.bytes, result.seconds = result.rows + rows, result.bytes + nbytes, seconds
                result.resumed_parts += 1
                self._loaded(part, item, built)
            else:
                self._submit(self.load_pool, partial(self._load, part, item), partial(self._copied, part, item, built))
        try:
            while self.pending:
                finished, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
                for future in [f for f in self.pending if f in finished]:  # submitted order: the first error wins
                    then = self.pending.pop(future)
                    then(future.result())
        except BaseException:
            for future in self.pending:
                future.cancel()
            self._abort()
            self.loads.cancel()
            self.builds.cancel()
            raise
        finally:
            self.load_pool.shutdown(wait=True, cancel_futures=True)
            self.index_pool.shutdown(wait=True, cancel_futures=True)
            self.loads.close()
            self.builds.close()
        return self.results

    def _submit(self, pool: ThreadPoolExecutor, fn: Callable[[], Any], then: Callable[[Any], None]) -> None:
        self.pending[pool.submit(fn)] = then

    def _load(self, part: Part, item: PartWork) -> tuple[int, int, float]:
        started = time.monotonic()
        self.progress.start_item(part.key, part.table, item.archive_bytes, 0)
        budget = [item.archive_bytes]

        def advance(rows: int, nbytes: int) -> None:
            # The progress counts the archive's (compressed) bytes: the rows' bytes at the archive's ratio.
            share = min(budget[0], int(nbytes / self._ratio))
            budget[0] -= share
            self.progress.advance(part.key, rows, share)

        rows, nbytes = item.load(self.loads.get(), advance)
        self.progress.advance(part.key, 0, budget[0])
        return rows, nbytes, time.monotonic() - started

    def _copied(self, part: Part, item: PartWork, built: set[str], loaded: tuple[int, int, float]) -> None:
        rows, nbytes, seconds = loaded
        result = self.results[part.table]
        result.rows, result.bytes, result.seconds = result.rows + rows, result.bytes + nbytes, seconds
        what = f"{nbytes} bytes of SQL" if item.objects else f"{rows} rows, {nbytes} bytes"
        if item.through is not None:
            what += f" (through {item.through})"
        self.progress.finish_item(part.key, f"loaded {part.table}: {what} in {seconds:.1f} s")
        self._loaded(part, item, built)

    def _loaded(self, part: Part, item: PartWork, built: set[str]) -> None:
        """The part is in: its table's indexes in parallel, then its constraints, then ``ANALYZE``."""
        if item.table is None:
            return
        indexes = [b for b in item.indexes if b.key not in built]
        constraints = [b for b in item.constraints if b.key not in built]
        self.indexes_left[part.table] = len(indexes)
        then = partial(self._indexed, part.table, item.table, constraints)
        if not indexes:
            self._indexed(part.table, item.table, constraints, None)
        for build in indexes:
            self._submit(self.index_pool, partial(self._build_all, [build]), then)

    def _indexed(self, name: str, table: str, constraints: list[Build], seconds: float | None) -> None:
        if seconds is not None:
            self.results[name].index_seconds += seconds
            self.indexes_left[name] -= 1
        if self.indexes_left[name] == 0:
            self._submit(
                self.index_pool, partial(self._build_all, constraints), partial(self._constrained, name, table)
            )

    def _constrained(self, name: str, table: str, seconds: float) -> None:
        self.results[name].index_seconds += seconds
        self._submit(self.index_pool, partial(self._analyze, table), _ignore)

    def _build_all(self, builds: list[Build]) -> float:
        started = time.monotonic()
        for build in builds:
            conn = self.builds.get()
            with pg_errors("target", self.builds.target), conn.transaction():
                conn.execute(build.sql)
                mark_entry(conn, build.key)
                crashpoint("index-built")
        return time.monotonic() - started

    def _analyze(self, table: str) -> None:
        with pg_errors("target", self.builds.target):
            self.builds.get().execute(sql.SQL("ANALYZE {}").format(qualified(table)))
        crashpoint("analyzed")


def _ignore(_result: object) -> None:
    return None
