"""``ferry pg copy``: the runbook of one database copy, phase by phase.

preflight checks → snapshot → schema dump → pre-data → data parts (longest critical path
first) with each table's indexes, constraints and ANALYZE as soon as it is loaded →
large objects → sequences → post-data (foreign keys, triggers, policies, …) →
materialized views. Each phase is its own module; this one puts them in order.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from migration.crashpoints import crashpoint
from migration.errors import ExtensionMissingError, FerryError
from migration.postgres import catalog
from migration.postgres.catalog import Conn, TableInfo
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import PgEndpoint, parse_url
from migration.postgres.copy.attoptions import leave_out_unknown_attribute_options
from migration.postgres.copy.checks import (
    available_extensions,
    check_target,
    ensure_database,
    installed_extensions,
    parse_memory_setting,
    require_writable,
)
from migration.postgres.copy.copylock import COPY_APPLICATION_NAME, end_orphan_sessions, take_copy_lock
from migration.postgres.copy.data import open_target_session
from migration.postgres.copy.filters import needs_of, support_entries
from migration.postgres.copy.model import CopyOptions, CopyResult
from migration.postgres.copy.plan import Part, plan_parts
from migration.postgres.copy.platform import (
    LeftBehind,
    copy_database_settings,
    left_behind,
    platform_filters,
    skip_entry,
)
from migration.postgres.copy.restore import apply_entries, restore_script
from migration.postgres.copy.resume import (
    not_valid_foreign_keys,
    relaxed_foreign_key,
    restart_partial_groups,
    resume_can_succeed,
    validated_foreign_keys,
)
from migration.postgres.copy.scheduler import DataPhase
from migration.postgres.copy.schema import PG_CONSTRAINT, DumpFilters, SchemaDump, TocEntry, dump_schema
from migration.postgres.copy.share import share_copy, shared_parts, unshare_copy
from migration.postgres.copy.shared_phase import SharedDataPhase
from migration.postgres.copy.snapshot import SourceSnapshot, exported_snapshot
from migration.postgres.copy.state import (
    CopyState,
    create_state,
    drop_state,
    load_state,
    mark_entry,
    mark_step,
    state_exists,
)
from migration.postgres.copy.target import clean_target
from migration.postgres.copy.tools import ClientTools, find_client_tools
from migration.postgres.copy.workdir import schema_workdir
from migration.postgres.footprint import capture_schemas
from migration.postgres.identity import refuse_same_database
from migration.postgres.matviews import matview_identities, refresh_matviews
from migration.postgres.origin import record_copy_origin, source_shape
from migration.progress import PhaseTimer, ProgressSink

__all__ = ["copy_database", "locked_target", "resume_state_left"]


def copy_database(options: CopyOptions, progress: ProgressSink) -> CopyResult:
    """Copy one database from ``options.source_url`` to ``options.target_url``.

    :param options: what to copy and how.
    :param progress: where progress goes.
    :raises FerryError: on any failure; the source is never written to.
    """
    started = time.monotonic()
    source = parse_url(options.source_url, "source")
    target = parse_url(options.target_url, "target")
    if options.maintenance_work_mem is not None:
        parse_memory_setting(options.maintenance_work_mem)
    phases: dict[str, float] = {}
    phase = PhaseTimer(progress, phases)
    with phase("preflight"):
        with connect(source) as probe, pg_errors("source", source):
            source_major = catalog.server_major(probe)
            over_tls = bool(probe.pgconn.ssl_in_use)
        tools = find_client_tools(at_least=source_major, tls=over_tls)
        tools.require_at_least(source_major)
        ensure_database(target, options.create_database)
        with connect(source) as src_conn, connect(target) as dst_conn:
            with pg_errors("target", target):
                refuse_same_database(src_conn, dst_conn, target)
                target_major = catalog.server_major(dst_conn)
                require_writable(dst_conn)
            with pg_errors("source", source):
                used = installed_extensions(src_conn)
            with pg_errors("target", target):
                missing = sorted(used - available_extensions(dst_conn))
        if missing:
            raise ExtensionMissingError(
                f"the target server lacks extension(s) the source uses: {', '.join(missing)}", side="target"
            )
    with locked_target(target, options.owner) as (admin, control):
        with pg_errors("target", target):
            state = check_target(control, source, resume=options.resume, clean=options.clean)
        crashpoint("preflight")
        with schema_workdir() as workdir, exported_snapshot(source) as (snapshot, holder):
            run = _CopyRun(
                options, progress, phase, tools, source, target, snapshot, holder, control, admin, state, target_major
            )
            try:
                result = run.run(workdir, source_major, binary=source_major == target_major)
            except FerryError as exc:
                if resume_can_succeed(exc) and resume_state_left(target):
                    exc.message += " (ferry pg copy --resume continues from here)"
                raise
    result.phases = phases
    result.seconds = time.monotonic() - started
    return result


@contextmanager
def locked_target(target: PgEndpoint, owner: str | None) -> Iterator[tuple[Conn, Conn]]:
    """A copy's two sessions on the target, closed at the end: the admin one, holding the copy lock (the sessions
    a killed copy left ended), and the control one (as *owner*, when given)."""
    admin = connect(target, autocommit=True, application_name=COPY_APPLICATION_NAME)
    control: Conn | None = None
    try:
        with pg_errors("target", target):
            take_copy_lock(admin)
            end_orphan_sessions(admin)
        control = open_target_session(target, owner)
        yield admin, control
    finally:
        if control is not None:
            control.close()
        admin.close()


def resume_state_left(target: PgEndpoint) -> bool:
    """Whether the target holds resume state now (after a failure: only then is the hint true).

    Asked on a new connection: the failure may have been the copy's own connection breaking.
    """
    try:
        with connect(target, autocommit=True) as conn:
            return state_exists(conn)
    except (psycopg.Error, FerryError):
        return False


@dataclass
class _CopyRun:
    """One copy's phases after the preflight, sharing its connections and snapshot."""

    options: CopyOptions
    progress: ProgressSink
    phase: PhaseTimer
    tools: ClientTools
    source: PgEndpoint
    target: PgEndpoint
    snapshot: SourceSnapshot
    holder: Conn
    control: Conn
    admin: Conn
    state: CopyState | None
    target_major: int
    left_behind: LeftBehind = field(default_factory=LeftBehind)
    #: Sequences a filtered copy brings because its tables use them.
    extra_sequences: list[int] = field(default_factory=list)
    #: On resume, the large objects all copied before it (kept as they are), else ``None``.
    lo_kept: int | None = None
    #: Rows travel in COPY's binary format (binary-safe tables; the servers' majors are equal).
    binary: bool = False

    def run(self, workdir: Path, source_major: int, *, binary: bool) -> CopyResult:
        result = CopyResult(self.source.display, self.target.display, self.snapshot, resumed=self.state is not None)
        self.binary = binary
        with self.phase("schema"):
            dump, tables, parts, done = self._schema(workdir, source_major)
        with self.phase("data"):
            with pg_errors("source", self.source):
                lo_oids = catalog.read_large_objects(self.holder) if self.lo_kept is None else []
            self.progress.set_total(sum(p.est_bytes for p in parts if p.key not in done))
            kind = SharedDataPhase if self.options.shared else DataPhase
            scheduler = kind(
                self.options, self.source, self.target, self.snapshot, tables, self.progress, self.tools.psql, binary
            )
            scheduler.run(parts, done, lo_oids)
            result.tables = sorted(scheduler.results.values(), key=lambda t: -t.bytes)
            result.large_objects = len(lo_oids) if self.lo_kept is None else self.lo_kept
        crashpoint("data")
        with self.phase("sequences"):
            result.sequences = self._sequences(dump)
        crashpoint("sequences")
        with self.phase("post-data"):
            result.not_valid_foreign_keys = self._post_data(dump, tables, workdir)
        crashpoint("post-data")
        with self.phase("materialized views"):
            with pg_errors("source", self.source):
                matviews = catalog.read_matviews(self.holder, dump.oids("MATERIALIZED VIEW"))
            refresh_matviews(self.control, matviews, self.target)
            result.materialized_views = len(matviews)
        crashpoint("materialized-views")
        with pg_errors("source", self.source):
            followed = bool(capture_schemas(self.holder))  # as the copy's snapshot sees it
            views = matview_identities(self.holder) if followed else {}
            shape = source_shape(self.holder) if followed else {}
        with pg_errors("target", self.target), self.control.transaction():
            if followed:
                # The first snapshot the copy read from: a follow checks capture was in place before it.
                first = self.state.snapshot.get("txid_snapshot") if self.state is not None else None
                record_copy_origin(self.control, str(first or self.snapshot.txid_snapshot), views, shape)
            drop_state(self.control)
        return result

    def _schema(
        self, workdir: Path, source_major: int
    ) -> tuple[SchemaDump, list[TableInfo], list[Part], dict[str, tuple[int, int, float]]]:
        with pg_errors("source", self.source):
            self.holder.execute("SELECT pg_catalog.set_config('search_path', '', true)")
            self.left_behind = left_behind(self.holder)
        filters = platform_filters(self.options.filters, self.left_behind)
        # The dump comes first: a filter that matches nothing fails here, before --clean empties the target.
        dump = dump_schema(self.tools, self.source, self.snapshot.snapshot_id, filters, workdir)
        support: list[TocEntry] = []
        full: SchemaDump | None = None
        if self.options.filters.chosen:
            with pg_errors("source", self.source):
                needs = needs_of(self.holder, dump)
            if needs.objects:
                unfiltered = platform_filters(DumpFilters(), self.left_behind)
                full = dump_schema(self.tools, self.source, self.snapshot.snapshot_id, unfiltered, workdir, "full")
                support = support_entries(full, dump, needs)
                self.extra_sequences = needs.sequence_oids
        in_dump = {(e.catalog, e.oid) for e in dump.post_data if e.desc in ("INDEX", "CONSTRAINT")}
        with pg_errors("source", self.source):
            tables = catalog.read_tables(self.holder, dump.oids("TABLE"), in_dump)
        crashpoint("schema-dumped")
        if self.state is not None:
            parts = [Part.from_json(p) for p in self.state.plan["parts"]]
            with pg_errors("target", self.target):
                restart = restart_partial_groups(self.control, parts, self.state)
            self.lo_kept = restart.large_objects_kept
            with pg_errors("target", self.target), self.control.transaction():
                # This run's snapshot for helpers to import (or, unshared now, nothing for an earlier run's to join).
                if self.options.shared:
                    self._share(parts, tables)
                else:
                    unshare_copy(self.control)
            kept = sum(1 for p in parts if p.key in restart.done)
            self.progress.message(f"resuming: {kept} of {len(parts)} parts already copied")
            for name in restart.tables + (["the large objects"] if restart.large_objects_again else []):
                # Its parts would come from two snapshots: a row changed in between could be in two or none.
                self.progress.message(f"resuming: {name} copied again whole, from the resume's snapshot")
            return dump, tables, parts, restart.done
        pre_data = [e for e in dump.pre_data if not skip_entry(e, self.left_behind)]
        scripts = [restore_script(self.tools, dump, pre_data, workdir, "pre-data", self.target_major)]
        if full is not None and support:
            # What the chosen tables need goes first: their schemas, types, functions and sequences.
            scripts.insert(0, restore_script(self.tools, full, support, workdir, "support", self.target_major))
        with pg_errors("target", self.target):
            scripts, left_out = leave_out_unknown_attribute_options(self.control, scripts)
        if note := left_out.note():
            self.progress.message(note)
        with pg_errors("source", self.source):
            parts = plan_parts(self.holder, tables, self.options.split_bytes, source_major, self.options.jobs)
            # How many large objects the snapshot holds: a resume tells whether all their batches were done.
            large_objects = len(catalog.read_large_objects(self.holder))
        # Emptying the target (--clean), the schema and the resume state commit together:
        # after a crash the target holds either all of them or what it held before.
        with pg_errors("target", self.target), self.control.transaction():
            if self.options.clean:
                clean_target(self.control)
            for script in scripts:
                if script.entries:
                    self.control.execute(script.header)
                    for item in script.entries:
                        self.control.execute(item.sql)
            self.control.execute("SELECT pg_catalog.set_config('search_path', '', false)")
            plan = {"parts": [p.to_json() for p in parts], "large_objects": large_objects}
            create_state(self.control, self.source.display, self.snapshot.as_dict(), plan)
            if self.options.shared:
                self._share(parts, tables)
            crashpoint("pre-data")
        crashpoint("pre-data-committed")
        with pg_errors("source", self.source):
            copy_database_settings(self.holder, self.admin, self.target, self.progress)
        return dump, tables, parts, {}

    def _share(self, parts: list[Part], tables: list[TableInfo]) -> None:
        share_copy(
            self.control, self.snapshot, self.options.owner, COPY_APPLICATION_NAME,
            shared_parts(parts, tables, self.binary),
        )  # fmt: skip

    def _sequences(self, dump: SchemaDump) -> int:
        with pg_errors("source", self.source):
            sequences = catalog.read_sequences(self.holder, dump.oids("SEQUENCE") + self.extra_sequences)
        with pg_errors("target", self.target):
            for name, value, called in sequences:
                self.control.execute("SELECT pg_catalog.setval(%s, %s, %s)", (name, value, called))
        return len(sequences)

    def _post_data(self, dump: SchemaDump, tables: list[TableInfo], workdir: Path) -> list[tuple[str, str]]:
        """Apply post-data; returns the foreign keys a resumed copy added ``NOT VALID``."""
        with pg_errors("target", self.target):
            state_now = load_state(self.control)
        if state_now is None or "post-data" not in state_now.done_steps:
            self._apply_post_data(dump, tables, workdir, state_now)
        if self.state is None:
            return []  # one snapshot: every foreign key holds as on the source
        with pg_errors("source", self.source):
            validated = validated_foreign_keys(self.holder, dump.oids("FK CONSTRAINT", dump.post_data))
        with pg_errors("target", self.target):
            relaxed = not_valid_foreign_keys(self.control, validated)
        for table, name in relaxed:
            self.progress.message(
                f"warning: foreign key {name} on {table} added NOT VALID (it holds for new writes, reads no row): "
                "rows copied before and after the resume disagree; the follow brings the changes, "
                "or copy again inside the write freeze"
            )
        return relaxed

    def _apply_post_data(
        self, dump: SchemaDump, tables: list[TableInfo], workdir: Path, state_now: CopyState | None
    ) -> None:
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
            and not skip_entry(e, self.left_behind)
            and not (e.catalog == PG_CONSTRAINT and e.oid in dangling)
        ]
        script = restore_script(self.tools, dump, entries, workdir, "post-data", self.target_major)
        apply_entries(
            script,
            lambda: open_target_session(self.target, self.options.owner),
            self.target,
            jobs=self.options.index_jobs or self.options.jobs,
            done=state_now.done_entries if state_now is not None else set(),
            mark=mark_entry,
            # Parts from two snapshots: a foreign key may not hold (see migration.postgres.copy.resume).
            relax=relaxed_foreign_key if self.state is not None else None,
        )
        with pg_errors("target", self.target):
            mark_step(self.control, "post-data")
