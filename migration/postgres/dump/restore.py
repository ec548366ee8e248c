"""``ferry pg copy --from-dump``: a ``pg_dump -Fc`` archive restored as the live copy restores a source.

Download (a URL) → preflight (the archive read and checked, the target's guards: empty unless
``--clean``/``--resume``, writable, the extensions there, one copy at a time) → pre-data, applied by
ferry in one target transaction together with the resume state → data: each table's rows streamed
from a ``pg_restore`` child into the target's ``COPY`` (``--jobs`` at a time, biggest first), each in
one transaction with its done marker, and each loaded table's constraints and indexes (entries with
markers) on the index workers as soon as it is in → sequences → post-data entry by entry with its
marker. After a ``kill -9`` anywhere, ``--resume`` with the same archive does what is not done. An
archive is one snapshot: a resumed restore is as consistent as one never interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

from migration.children import RunningChildren
from migration.crashpoints import crashpoint
from migration.errors import ExtensionMissingError, FerryError, ResumeError
from migration.postgres import catalog
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import PgEndpoint, parse_url
from migration.postgres.copy.attoptions import leave_out_unknown_attribute_options
from migration.postgres.copy.checks import (
    available_extensions,
    check_target,
    ensure_database,
    parse_memory_setting,
    require_writable,
)
from migration.postgres.copy.data import open_target_session
from migration.postgres.copy.model import TableResult
from migration.postgres.copy.pipeline import locked_target, resume_state_left
from migration.postgres.copy.plan import Part
from migration.postgres.copy.restore import EntrySQL, RestoreScript, apply_entries, restore_script
from migration.postgres.copy.resume import resume_can_succeed
from migration.postgres.copy.schema import SchemaDump
from migration.postgres.copy.state import CopyState, create_state, drop_state, load_state, mark_entry, mark_step
from migration.postgres.copy.target import clean_target, describe_contents
from migration.postgres.copy.tools import ClientTools
from migration.postgres.copy.workdir import schema_workdir
from migration.postgres.dump.archive import Archive
from migration.postgres.dump.load import load_sql_part, load_table_data, stream_rows
from migration.postgres.dump.phase import Build, DumpDataPhase, PartWork, Sessions, split_constraint
from migration.postgres.dump.selection import Selection, TableLoad, select_entries
from migration.postgres.dump.source import open_dump
from migration.progress import PhaseTimer, ProgressSink

__all__ = ["DumpCopyOptions", "DumpCopyResult", "copy_from_dump"]

# Rows' text per byte of a gzip archive, for the progress until a table is in (then it is exact).
_GZIP_RATIO = 4.0


@dataclass(frozen=True)
class DumpCopyOptions:
    """What ``ferry pg copy --from-dump`` takes (the live copy's :class:`CopyOptions` where they apply).

    :param dump: a file, or an ``http(s)://`` URL downloaded into *download_dir* first.
    """

    dump: str
    target_url: str
    jobs: int = 4
    index_jobs: int | None = None
    owner: str | None = None
    clean: bool = False
    resume: bool = False
    create_database: bool = False
    maintenance_work_mem: str | None = None
    download_dir: Path | None = None


@dataclass
class DumpCopyResult:
    """What :func:`copy_from_dump` did; ``to_json()`` is the ``--json`` summary."""

    archive: Archive
    target: str
    resumed: bool
    downloaded: bool
    tables: list[TableResult] = field(default_factory=list)
    large_objects: int = 0
    sequences: int = 0
    materialized_views: int = 0
    left_out: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables if t.name != _LARGE_OBJECTS)

    def to_json(self) -> dict[str, Any]:
        a = self.archive
        return {
            "source": a.display,
            "target": self.target,
            "archive": {
                "path": str(a.path),
                "bytes": a.size,
                "format": a.version,
                "compression": a.compression,
                "dbname": a.dbname,
                "dumped_from": a.server_version,
                "dumped_by": a.dump_version,
                "identity": a.identity,
                "downloaded": self.downloaded,
            },
            "consistent": True,  # one archive is one snapshot, resumed or not
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "rows": self.rows,
            "bytes": sum(t.bytes for t in self.tables),
            "large_objects": self.large_objects,
            "sequences": self.sequences,
            "materialized_views": self.materialized_views,
            "left_out": self.left_out,
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "tables": [t.to_json() for t in self.tables if t.name != _LARGE_OBJECTS],
        }


_LARGE_OBJECTS = "large objects"


def copy_from_dump(options: DumpCopyOptions, progress: ProgressSink) -> DumpCopyResult:
    """Restore the archive ``options.dump`` into ``options.target_url``.

    :raises FerryError: on any failure; an error about the archive names the source.
    """
    started = time.monotonic()
    target = parse_url(options.target_url, "target")
    if options.maintenance_work_mem is not None:
        parse_memory_setting(options.maintenance_work_mem)
    phases: dict[str, float] = {}
    phase = PhaseTimer(progress, phases)
    with phase("download" if options.dump.startswith(("http://", "https://")) else "archive"):
        tools, archive, downloaded = open_dump(options.dump, progress, options.download_dir)
        selection = select_entries(archive)
    progress.message(
        f"archive of {archive.dbname} (PostgreSQL {archive.server_version.split()[0]}, pg_dump "
        f"{archive.dump_version.split()[0]}, {archive.compression}): {len(selection.tables)} tables, "
        f"{archive.size} bytes"
    )
    if selection.left_out:
        progress.message(f"left out (the platform's and ferry's own): {', '.join(selection.left_out[:10])}")
    with phase("preflight"):
        ensure_database(target, options.create_database)
        with connect(target) as probe, pg_errors("target", target):
            require_writable(probe)
            target_major = catalog.server_major(probe)
            missing = sorted(selection.extensions - available_extensions(probe))
        if missing:
            raise ExtensionMissingError(
                f"the target server lacks extension(s) the archive uses: {', '.join(missing)}", side="target"
            )
    with locked_target(target, options.owner) as (admin, control):
        with pg_errors("target", target):
            state = _check_target(control, archive, options, progress)
        crashpoint("preflight")
        result = DumpCopyResult(archive, target.display, state is not None, downloaded, left_out=selection.left_out)
        with schema_workdir() as workdir:
            run = _Restore(options, progress, phase, tools, archive, selection, target, control, admin, target_major)
            try:
                run.run(workdir, state, result)
            except FerryError as exc:
                if exc.side != "source" and resume_can_succeed(exc) and resume_state_left(target):
                    exc.message += " (ferry pg copy --from-dump … --resume continues from here)"
                raise
    result.phases = phases
    result.seconds = time.monotonic() - started
    return result


def _check_target(
    control: Conn, archive: Archive, options: DumpCopyOptions, progress: ProgressSink
) -> CopyState | None:
    """The state to resume; with ``--resume`` and nothing to resume in an empty target (a kill before the
    schema committed), a restore from the beginning, as the runbook's ``copy_resuming`` does."""
    try:
        return check_target(control, archive.display, resume=options.resume, clean=options.clean)
    except ResumeError:
        if not options.resume or load_state(control) is not None or describe_contents(control):
            raise
    progress.message("nothing to resume in the target (it is empty): restoring from the beginning")
    return check_target(control, archive.display, resume=False, clean=options.clean)


@dataclass
class _Restore:
    options: DumpCopyOptions
    progress: ProgressSink
    phase: PhaseTimer
    tools: ClientTools
    archive: Archive
    selection: Selection
    target: PgEndpoint
    control: Conn
    admin: Conn
    target_major: int

    def _script(self, entries: list[Any], workdir: Path, name: str) -> RestoreScript:
        dump = SchemaDump(self.archive.path, [], [])
        return restore_script(self.tools, dump, [e.toc for e in entries], workdir, name, self.target_major)

    def run(self, workdir: Path, state: CopyState | None, result: DumpCopyResult) -> None:
        sel = self.selection
        with self.phase("schema"):
            pre_data = self._script(sel.pre_data, workdir, "pre-data")
            post_data = self._script(
                sel.post_data + [e for t in sel.tables for e in t.constraints + t.indexes], workdir, "post-data"
            )
            header = pre_data.header or post_data.header
            parts = self._parts()
            if state is None:
                self._pre_data(pre_data, parts)
            else:
                self.progress.message(f"resuming: {len(state.done_parts)} of {len(parts)} parts already loaded")
            self._heroku_search_path()
        with pg_errors("target", self.target):
            now = load_state(self.control)
        assert now is not None
        by_key = {e.key: e for e in post_data.entries}
        with self.phase("data"):
            self.progress.set_total(sum(p.est_bytes for p in parts if p.key not in now.done_parts))
            result.tables = self._data(parts, workdir, header, by_key, now)
            result.large_objects = sel.large_object_count
        crashpoint("data")
        with self.phase("sequences"):
            sequences = self._script(sel.sequences, workdir, "sequences")
            self._apply(sequences, now.done_entries)
            result.sequences = len(sel.sequences)
        crashpoint("sequences")
        with self.phase("post-data"):
            with pg_errors("target", self.target):
                now = load_state(self.control)
            assert now is not None
            if "post-data" not in now.done_steps:
                late = {e.dump_id for e in sel.post_data}
                self._apply(RestoreScript(post_data.header, [e for e in post_data.entries if e.entry.dump_id in late]),
                            now.done_entries)  # fmt: skip
                with pg_errors("target", self.target):
                    mark_step(self.control, "post-data")
            result.materialized_views = sel.materialized_views
        crashpoint("post-data")
        with pg_errors("target", self.target), self.control.transaction():
            drop_state(self.control)

    def _parts(self) -> list[Part]:
        parts = [Part(t.key, t.name, 0, 1, None, t.truncate, t.entry.data_bytes, float(t.entry.data_bytes))
                 for t in self.selection.tables]  # fmt: skip
        parts += [Part(g.key, _LARGE_OBJECTS, 0, 1, None, False, g.data.data_bytes, float(g.data.data_bytes))
                  for g in self.selection.large_objects]  # fmt: skip
        return sorted(parts, key=lambda p: (-p.priority, p.key))

    def _pre_data(self, script: RestoreScript, parts: list[Part]) -> None:
        """Emptying the target (``--clean``), the schema and the resume state, in one transaction."""
        with pg_errors("target", self.target):
            scripts, left_out = leave_out_unknown_attribute_options(self.control, [script])
        if note := left_out.note():
            self.progress.message(note)
        snapshot = {"archive": str(self.archive.path), "identity": self.archive.identity,
                    "dbname": self.archive.dbname, "dumped_by": self.archive.dump_version}  # fmt: skip
        with pg_errors("target", self.target), self.control.transaction():
            if self.options.clean:
                clean_target(self.control)
            for each in scripts:
                if each.entries:
                    self.control.execute(each.header)
                    for item in each.entries:
                        self.control.execute(item.sql)
            self.control.execute("SELECT pg_catalog.set_config('search_path', '', false)")
            plan = {"parts": [p.to_json() for p in parts], "large_objects": self.selection.large_object_count}
            create_state(self.control, self.archive.display, snapshot, plan)
            crashpoint("pre-data")
        crashpoint("pre-data-committed")

    def _heroku_search_path(self) -> None:
        """Extensions in ``heroku_ext`` (Heroku's layout): the database's ``search_path`` names it, as on Heroku
        (an archive does not carry database settings; the live copy copies the source's)."""
        if not any(e.desc == "EXTENSION" and "SCHEMA heroku_ext" in e.defn for e in self.selection.pre_data):
            return
        database = psycopg.sql.Identifier(self.target.dbname).as_string()
        try:
            self.admin.execute(f'ALTER DATABASE {database} SET search_path = "$user", public, heroku_ext')
        except psycopg.Error as exc:
            self.progress.message(f"warning: could not set search_path on the target database: {exc}")

    def _data(
        self, parts: list[Part], workdir: Path, header: str, by_key: dict[str, EntrySQL], state: CopyState
    ) -> list[TableResult]:
        children = RunningChildren()
        settings = (
            {"maintenance_work_mem": self.options.maintenance_work_mem} if self.options.maintenance_work_mem else {}
        )
        loads = Sessions(self.target, self.options.owner, header, {})
        builds = Sessions(self.target, self.options.owner, header, settings)
        work: dict[str, PartWork] = {}
        for table in self.selection.tables:
            item = PartWork(partial(self._load_table, table, workdir, children), table.name if table.truncate else None,
                            table.entry.data_bytes, through=None if table.truncate else table.copy_into)  # fmt: skip
            item.indexes = [Build.of(by_key[e.toc_key]) for e in table.indexes if e.toc_key in by_key]
            for entry in table.constraints:
                if entry.toc_key in by_key:
                    split = split_constraint(by_key[entry.toc_key])
                    if split is not None:
                        item.indexes.append(split[0])
                    item.constraints.append(split[1] if split is not None else Build.of(by_key[entry.toc_key]))
            work[table.key] = item
        for group in self.selection.large_objects:
            work[group.key] = PartWork(partial(self._load_objects, group.entries, group.key, workdir), None,
                                       group.data.data_bytes, objects=True)  # fmt: skip
        ratio = 1.0 if self.archive.compression == "none" else _GZIP_RATIO
        phase = DumpDataPhase(loads, builds, jobs=self.options.jobs, index_jobs=self.options.index_jobs or
                              self.options.jobs, progress=self.progress, abort=children.kill, compression_ratio=ratio)  # fmt: skip
        results = phase.run(parts, work, state.done_parts, state.done_entries)
        return sorted(results.values(), key=lambda t: -t.bytes)

    def _load_table(
        self,
        table: TableLoad,
        workdir: Path,
        children: RunningChildren,
        conn: Conn,
        advance: Callable[[int, int], None],
    ) -> tuple[int, int]:
        rows = stream_rows(self.tools, self.archive, table.entry, workdir, children)
        loaded = load_table_data(conn, self.target, rows, table.entry, table.key,
                                 table.name if table.truncate else None, advance)  # fmt: skip
        return loaded.rows, loaded.bytes

    def _load_objects(
        self, entries: list[Any], key: str, workdir: Path, conn: Conn, advance: Callable[[int, int], None]
    ) -> tuple[int, int]:
        script = self._script(entries, workdir, key.replace("#", "-"))
        loaded = load_sql_part(conn, self.target, [item.sql for item in script.entries], key)
        return 0, loaded.bytes

    def _apply(self, script: RestoreScript, done: set[str]) -> None:
        apply_entries(
            script,
            lambda: open_target_session(self.target, self.options.owner),
            self.target,
            jobs=self.options.index_jobs or self.options.jobs,
            done=done,
            mark=mark_entry,
        )
