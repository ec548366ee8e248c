"""``ferry pg copy``: the runbook of one database copy, phase by phase.

preflight checks → snapshot → schema dump → pre-data → data parts (biggest first) with
each table's indexes, constraints and ANALYZE as soon as it is loaded → large objects →
sequences → post-data (foreign keys, triggers, policies, …) → materialized views.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from migration.errors import (
    DatabaseMissingError,
    ExtensionMissingError,
    ResumeError,
    SourceChangedError,
    TargetNotEmptyError,
)
from migration.postgres import catalog
from migration.postgres.catalog import Conn, IndexBuild, TableInfo
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import PgEndpoint, parse_url
from migration.postgres.data import WorkerConnections, copy_part, open_target_session
from migration.postgres.indexes import analyze_table, build_index
from migration.postgres.largeobjects import copy_large_object_batch, large_object_batches
from migration.postgres.plan import Part, plan_parts
from migration.postgres.postdata import pending_post_data
from migration.postgres.schema import PG_CONSTRAINT, DumpFilters, SchemaDump, TocEntry, dump_schema, restore_entries
from migration.postgres.snapshot import SourceSnapshot, exported_snapshot
from migration.postgres.state import CopyState, create_state, drop_state, load_state, mark_step
from migration.postgres.target import clean_target, describe_contents
from migration.postgres.tools import ClientTools, find_client_tools
from migration.progress import ProgressSink

__all__ = ["CopyOptions", "CopyResult", "TableResult", "copy_database"]

# Heroku's own schema: its event triggers and functions belong to the platform, not the app.
PLATFORM_SCHEMAS = ("_heroku",)


@dataclass(frozen=True)
class CopyOptions:
    """Everything ``ferry pg copy`` takes.

    :param jobs: parallel COPY streams.
    :param index_jobs: parallel index builds (defaults to *jobs*).
    :param owner: role that owns every object on the target; ``None`` keeps the
        connecting user as owner (source owners and grants are never copied).
    :param maintenance_work_mem: for index builds; ``None`` keeps the server's setting
        (bigger is not faster: bench/RESULTS.md).
    :param split_bytes: tables bigger than this are copied in ranges by several workers;
        ``None`` decides per table (see :func:`migration.postgres.plan.split_count`), 0 never splits.
    """

    source_url: str
    target_url: str
    jobs: int = 4
    index_jobs: int | None = None
    filters: DumpFilters = field(default_factory=DumpFilters)
    owner: str | None = None
    clean: bool = False
    resume: bool = False
    create_database: bool = False
    split_bytes: int | None = None
    maintenance_work_mem: str | None = None


@dataclass
class TableResult:
    """One table's copy: rows and COPY bytes moved, copy and index seconds."""

    name: str
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    index_seconds: float = 0.0
    parts: int = 0
    resumed_parts: int = 0


@dataclass
class CopyResult:
    """What ``copy_database`` did; ``to_json()`` is the ``--json`` summary."""

    source: str
    target: str
    snapshot: SourceSnapshot
    resumed: bool
    tables: list[TableResult] = field(default_factory=list)
    large_objects: int = 0
    sequences: int = 0
    materialized_views: int = 0
    phases: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "snapshot": self.snapshot.as_dict(),
            "consistent": not self.resumed,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "rows": self.rows,
            "bytes": self.bytes,
            "large_objects": self.large_objects,
            "sequences": self.sequences,
            "materialized_views": self.materialized_views,
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "tables": [
                {
                    "name": t.name,
                    "rows": t.rows,
                    "bytes": t.bytes,
                    "seconds": round(t.seconds, 3),
                    "index_seconds": round(t.index_seconds, 3),
                    "parts": t.parts,
                    "resumed_parts": t.resumed_parts,
                }
                for t in self.tables
            ],
        }


class _Phases:
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


def _ensure_database(target: PgEndpoint, create: bool) -> None:
    try:
        connect(target).close()
    except DatabaseMissingError:
        if not create:
            raise
        with connect(target.with_dbname("postgres"), autocommit=True) as admin, pg_errors("target", target):
            admin.execute(f"CREATE DATABASE {psycopg.sql.Identifier(target.dbname).as_string()}")


def _check_target(control: Conn, options: CopyOptions, source: PgEndpoint) -> CopyState | None:
    state = load_state(control)
    if options.resume:
        if state is None:
            raise ResumeError("no unfinished copy to resume in this database", side="target")
        if state.source != source.display:
            raise ResumeError(f"the unfinished copy here came from {state.source}, not {source.display}", side="target")
        return state
    if state is not None and not options.clean:
        raise TargetNotEmptyError(
            "database holds an unfinished ferry copy; pass --resume to finish it or --clean to start over",
            side="target",
        )
    contents = describe_contents(control)
    if contents and not options.clean:
        raise TargetNotEmptyError(
            f"database {control.info.dbname} is not empty ({', '.join(contents)}); "
            "pass --clean to drop everything in it first",
            side="target",
        )
    if contents or state is not None:
        clean_target(control)
    return None


def _platform_filters(filters: DumpFilters) -> DumpFilters:
    return DumpFilters(
        filters.schemas, tuple(filters.exclude_schemas) + PLATFORM_SCHEMAS, filters.tables, filters.exclude_tables
    )


def _skip_entry(entry: TocEntry, platform_event_triggers: set[int]) -> bool:
    # RDS and other managed targets refuse COMMENT ON EXTENSION unless superuser.
    if entry.desc == "COMMENT" and entry.rest.startswith("- EXTENSION "):
        return True
    return entry.desc == "EVENT TRIGGER" and entry.oid in platform_event_triggers


def _platform_event_triggers(holder: Conn) -> set[int]:
    rows = holder.execute(
        "SELECT e.oid FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY(%s)",
        (list(PLATFORM_SCHEMAS),),
    ).fetchall()
    return {int(r[0]) for r in rows}


def _copy_database_settings(holder: Conn, control: Conn, target: PgEndpoint, progress: ProgressSink) -> None:
    """Carry the database-level search_path (Heroku adds ``heroku_ext`` to it)."""
    row = holder.execute(
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE d.datname = current_database() AND s.setrole = 0"
    ).fetchone()
    for setting in row[0] if row and row[0] else []:
        name, _, value = str(setting).partition("=")
        if name != "search_path":
            continue
        try:
            control.execute(
                f"ALTER DATABASE {psycopg.sql.Identifier(target.dbname).as_string()} SET search_path = {value}"
            )
        except psycopg.Error as exc:
            progress.message(f"warning: could not set search_path on the target database: {exc}")


def _ignore(_result: object) -> None:
    return None


class _Scheduler:
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
                self.submit(self.copy_pool, partial(self._copy, part), partial(self._copied, part))
        for i, batch in enumerate(large_object_batches(lo_oids)):
            key = f"large-objects#{i}"
            if key not in done:
                self.submit(self.copy_pool, partial(self._copy_los, batch, key), _ignore)
        try:
            while self.pending:
                finished, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
                for future in finished:
                    then = self.pending.pop(future)
                    then(future.result())
        except BaseException:
            self.abort()
            raise
        finally:
            self.copy_pool.shutdown(wait=True, cancel_futures=True)
            self.index_pool.shutdown(wait=True, cancel_futures=True)
            self.workers.close()
            for conn in self._index_conns:
                conn.close()

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

    def _copied(self, part: Part, result: Any) -> None:
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
        src, dst = self.workers.pair()
        with pg_errors("target", self.target):
            return copy_large_object_batch(src, dst, oids, key)


def _refresh_matviews(control: Conn, names: list[str], target: PgEndpoint) -> None:
    """Refresh in rounds: a view over another view waits for the round after it."""
    left = list(names)
    with pg_errors("target", target):
        _refresh_rounds(control, left)


def _refresh_rounds(control: Conn, left: list[str]) -> None:
    while left:
        failed: list[str] = []
        error: psycopg.Error | None = None
        for name in left:
            try:
                control.execute(f"REFRESH MATERIALIZED VIEW {name}")
            except psycopg.errors.ObjectNotInPrerequisiteState as exc:
                failed.append(name)
                error = exc
        if error is not None and len(failed) == len(left):
            raise error
        left = failed


def _check_extensions(source: PgEndpoint, target: PgEndpoint) -> None:
    with connect(source) as conn, pg_errors("source", source):
        used = {str(r[0]) for r in conn.execute("SELECT extname FROM pg_extension")}
    with connect(target) as conn, pg_errors("target", target):
        available = {str(r[0]) for r in conn.execute("SELECT name FROM pg_available_extensions")}
    missing = sorted(used - available)
    if missing:
        raise ExtensionMissingError(
            f"the target server lacks extension(s) the source uses: {', '.join(missing)}", side="target"
        )


def copy_database(options: CopyOptions, progress: ProgressSink) -> CopyResult:
    """Copy one database from ``options.source_url`` to ``options.target_url``.

    :param options: what to copy and how.
    :param progress: where progress goes.
    :raises FerryError: on any failure; the source is never written to.
    """
    started = time.monotonic()
    source = parse_url(options.source_url, "source")
    target = parse_url(options.target_url, "target")
    phases: dict[str, float] = {}
    phase = _Phases(progress, phases)
    with phase("preflight"):
        tools = find_client_tools()
        with connect(source) as probe, pg_errors("source", source):
            source_major = catalog.server_major(probe)
        tools.require_at_least(source_major)
        _ensure_database(target, options.create_database)
        with connect(target) as probe, pg_errors("target", target):
            target_major = catalog.server_major(probe)
        _check_extensions(source, target)
    control = open_target_session(target, options.owner)
    admin = connect(target, autocommit=True)
    try:
        with pg_errors("target", target):
            state = _check_target(admin, options, source)
        with tempfile.TemporaryDirectory(prefix="ferry-pg-") as tmp, exported_snapshot(source) as (snapshot, holder):
            run = _CopyRun(options, progress, phase, tools, source, target, snapshot, holder, control, admin, state)
            result = run.run(Path(tmp), source_major, binary=source_major == target_major)
    finally:
        control.close()
        admin.close()
    result.phases = phases
    result.seconds = time.monotonic() - started
    return result


@dataclass
class _CopyRun:
    """One copy's phases after the preflight, sharing its connections and snapshot."""

    options: CopyOptions
    progress: ProgressSink
    phase: _Phases
    tools: ClientTools
    source: PgEndpoint
    target: PgEndpoint
    snapshot: SourceSnapshot
    holder: Conn
    control: Conn
    admin: Conn
    state: CopyState | None
    platform_triggers: set[int] = field(default_factory=set)

    def run(self, workdir: Path, source_major: int, *, binary: bool) -> CopyResult:
        result = CopyResult(self.source.display, self.target.display, self.snapshot, resumed=self.state is not None)
        with self.phase("schema"):
            dump, tables, parts, done = self._schema(workdir, source_major)
        with self.phase("data"):
            with pg_errors("source", self.source):
                lo_oids = catalog.read_large_objects(self.holder)
            self.progress.set_total(sum(p.est_bytes for p in parts if p.key not in done))
            scheduler = _Scheduler(
                self.options, self.source, self.target, self.snapshot, tables, self.progress, self.tools.psql, binary
            )
            scheduler.run(parts, done, lo_oids)
            result.tables = sorted(scheduler.results.values(), key=lambda t: -t.bytes)
            result.large_objects = len(lo_oids)
        with self.phase("sequences"):
            result.sequences = self._sequences(dump)
        with self.phase("post-data"):
            self._post_data(dump, tables, workdir)
        with self.phase("materialized views"):
            with pg_errors("source", self.source):
                matviews = catalog.read_matviews(self.holder, dump.oids("MATERIALIZED VIEW"))
            _refresh_matviews(self.control, matviews, self.target)
            result.materialized_views = len(matviews)
        with pg_errors("target", self.target):
            drop_state(self.control)
        return result

    def _schema(
        self, workdir: Path, source_major: int
    ) -> tuple[SchemaDump, list[TableInfo], list[Part], dict[str, tuple[int, int, float]]]:
        with pg_errors("source", self.source):
            self.holder.execute("SELECT pg_catalog.set_config('search_path', '', true)")
            self.platform_triggers = _platform_event_triggers(self.holder)
        filters = _platform_filters(self.options.filters)
        dump = dump_schema(self.tools, self.source, self.snapshot.snapshot_id, filters, workdir)
        in_dump = {(e.catalog, e.oid) for e in dump.post_data if e.desc in ("INDEX", "CONSTRAINT")}
        with pg_errors("source", self.source):
            tables = catalog.read_tables(self.holder, dump.oids("TABLE"), in_dump)
        if self.state is not None:
            parts = [Part.from_json(p) for p in self.state.plan["parts"]]
            self.progress.message(f"resuming: {len(self.state.done_parts)} of {len(parts)} parts already copied")
            return dump, tables, parts, self.state.done_parts
        pre_data = [e for e in dump.pre_data if not _skip_entry(e, self.platform_triggers)]
        restore_entries(self.tools, dump, pre_data, self.target, workdir, name="pre-data", owner=self.options.owner)
        with pg_errors("source", self.source):
            _copy_database_settings(self.holder, self.admin, self.target, self.progress)
            parts = plan_parts(self.holder, tables, self.options.split_bytes, source_major, self.options.jobs)
        with pg_errors("target", self.target):
            plan = {"parts": [p.to_json() for p in parts]}
            create_state(self.control, self.source.display, self.snapshot.as_dict(), plan)
        return dump, tables, parts, {}

    def _sequences(self, dump: SchemaDump) -> int:
        with pg_errors("source", self.source):
            sequences = catalog.read_sequences(self.holder, dump.oids("SEQUENCE"))
        with pg_errors("target", self.target):
            for name, value, called in sequences:
                self.control.execute("SELECT pg_catalog.setval(%s, %s, %s)", (name, value, called))
        return len(sequences)

    def _post_data(self, dump: SchemaDump, tables: list[TableInfo], workdir: Path) -> None:
        with pg_errors("target", self.target):
            state_now = load_state(self.control)
        if state_now is not None and "post-data" in state_now.done_steps:
            return
        built = {(1259, i.oid) for t in tables for i in t.indexes} | {
            (2606, i.constraint_oid) for t in tables for i in t.indexes if i.constraint_oid is not None
        }
        with pg_errors("source", self.source):
            dangling = catalog.foreign_keys_outside(self.holder, dump.oids("TABLE"))
        for name in dangling.values():
            self.progress.message(f"warning: foreign key {name} not copied: it references a table left out")
        entries = [
            e
            for e in dump.post_data
            if (e.catalog, e.oid) not in built
            and not _skip_entry(e, self.platform_triggers)
            and not (e.catalog == PG_CONSTRAINT and e.oid in dangling)
        ]
        if self.state is not None:
            entries = pending_post_data(self.source, self.holder, self.target, self.control, entries)
        jobs = self.options.index_jobs or self.options.jobs
        restore_entries(
            self.tools, dump, entries, self.target, workdir, name="post-data", owner=self.options.owner, jobs=jobs
        )
        with pg_errors("target", self.target):
            mark_step(self.control, "post-data")
