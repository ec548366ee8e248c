"""Applying the schema archive ourselves, entry by entry, each with its done marker.

pg_restore writes the SQL of the chosen entries (``--file``, never a connection), and
ferry runs it: pre-data in one target transaction together with the copy's resume state,
post-data one entry per transaction together with that entry's marker, on several
sessions in dependency order. So a crash at any moment leaves every entry either applied
and marked or absent, and the resume applies exactly what is missing. Running the SQL
ourselves also lets a newer pg_restore feed an older target: session settings the target
does not know (``transaction_timeout`` before PostgreSQL 17) are left out.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import psycopg

from migration.crashpoints import crashpoint
from migration.errors import FerryError
from migration.postgres.catalog import Conn
from migration.postgres.connection import pg_errors
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.copy.schema import SchemaDump, TocEntry
from migration.postgres.copy.tools import ClientTools

__all__ = ["EntrySQL", "RestoreScript", "apply_entries", "restore_script"]

_ENTRY_HEAD = re.compile(r"^--\n-- TOC entry (\d+) \(class \d+ OID \d+\)\n", re.M)
_DEPENDENCIES = re.compile(r"^-- Dependencies: ([\d ]+)$", re.M)
_PSQL_RESTRICT = re.compile(r"^\\(?:un)?restrict \S+\s*$", re.M)
# Session settings newer pg_restore programs send, with the first server major that knows them.
_SETTING_SINCE = {"transaction_timeout": 17}
_SET_LINE = re.compile(r"^SET (\w+) = .*;$", re.M)
_DEADLOCK_RETRIES = 5


@dataclass(frozen=True)
class EntrySQL:
    """One archive entry's SQL and the entries it depends on."""

    entry: TocEntry
    sql: str
    depends_on: frozenset[int]

    @property
    def key(self) -> str:
        """Names the entry across dumps (dump ids change from one dump to the next)."""
        return f"{self.entry.desc} {self.entry.rest}"


@dataclass(frozen=True)
class RestoreScript:
    """Session settings every connection runs first, then the entries in archive order."""

    header: str
    entries: list[EntrySQL]


def _header_for(header: str, target_major: int) -> str:
    def keep(match: re.Match[str]) -> str:
        since = _SETTING_SINCE.get(match.group(1))
        return "" if since is not None and target_major < since else match.group(0)

    return _SET_LINE.sub(keep, header)


def restore_script(
    tools: ClientTools, dump: SchemaDump, entries: list[TocEntry], workdir: Path, name: str, target_major: int
) -> RestoreScript:
    """The SQL of *entries*, split per entry, with a header the target accepts."""
    if not entries:
        return RestoreScript("", [])
    listing = workdir / f"{name}.list"
    listing.write_text("".join(e.line + "\n" for e in entries))
    endpoint_free = tools.run(
        [tools.pg_restore, "--verbose", "--no-owner", "--no-acl", f"--use-list={listing}", "--file=-", dump.path],
        None,
        f"pg_restore ({name})",
    )
    text = _PSQL_RESTRICT.sub("", endpoint_free)
    by_id = {e.dump_id: e for e in entries}
    heads = list(_ENTRY_HEAD.finditer(text))
    header = text[: heads[0].start()] if heads else text
    result: list[EntrySQL] = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = text[head.start() : end]
        entry = by_id.get(int(head.group(1)))
        if entry is None:
            continue
        deps = _DEPENDENCIES.search(body)
        depends = frozenset(int(d) for d in deps.group(1).split()) if deps else frozenset()
        result.append(EntrySQL(entry, body, depends))
    return RestoreScript(_header_for(header, target_major), result)


def apply_entries(
    script: RestoreScript,
    open_session: Callable[[], Conn],
    target: PgEndpoint,
    *,
    jobs: int,
    done: set[str],
    mark: Callable[[Conn, str], None],
    relax: Callable[[EntrySQL, psycopg.Error], str | None] | None = None,
) -> int:
    """Apply every entry not in *done*, each in its own transaction with its marker.

    Entries run on up to *jobs* sessions, an entry only once the entries it depends on
    are in. Two ``ALTER TABLE`` on tables that reference each other may deadlock: the
    loser is rolled back whole and tried again. Returns how many entries were applied.

    :param relax: given an entry that failed and its error, the SQL to apply instead (in a
        new transaction, with the same marker), or ``None`` to fail.
    """
    pending = {e.entry.dump_id: e for e in script.entries if e.key not in done}
    if not pending:
        return 0
    local = threading.local()
    sessions: list[Conn] = []
    lock = threading.Lock()

    def session() -> Conn:
        conn: Conn | None = getattr(local, "conn", None)
        if conn is None:
            conn = open_session()
            with pg_errors("target", target):
                conn.execute(script.header)
            local.conn = conn
            with lock:
                sessions.append(conn)
        return conn

    def apply(item: EntrySQL) -> None:
        conn = session()
        sql, deadlocks = item.sql, 0
        while True:
            try:
                with pg_errors("target", target), conn.transaction():
                    conn.execute(sql)
                    mark(conn, item.key)
                    crashpoint("post-data-entry")
                return
            except FerryError as exc:
                cause = exc.__cause__
                if isinstance(cause, psycopg.errors.DeadlockDetected) and deadlocks < _DEADLOCK_RETRIES - 1:
                    deadlocks += 1
                    continue
                instead = relax(item, cause) if relax is not None and isinstance(cause, psycopg.Error) else None
                if instead is None or instead == sql:
                    raise
                sql = instead

    running: dict[Future[None], int] = {}
    finished: set[int] = set()
    try:
        with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="ferry-restore") as pool:
            while pending or running:
                ready = [i for i, e in pending.items() if _ready(e.depends_on, pending, running)]
                if not ready and not running:
                    ready = [next(iter(pending))]  # a dependency cycle: archive order decides
                for dump_id in ready:
                    running[pool.submit(apply, pending.pop(dump_id))] = dump_id
                completed, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in completed:
                    finished.add(running.pop(future))
                    future.result()
    finally:
        for conn in sessions:
            conn.close()
    return len(finished)


def _ready(depends_on: Iterable[int], pending: dict[int, EntrySQL], running: dict[Future[None], int]) -> bool:
    busy = set(running.values())
    return not any(d in pending or d in busy for d in depends_on)
