"""A helper of a shared copy: another task that claims and copies parts of a leader's plan.

A copy too big for one task is split across several: one runs ``copy_database`` with
``CopyOptions.shared`` (the leader: schema, plan, its own share of the parts, then each table's
indexes, post-data and the rest), the others run :func:`help_copy`. A helper waits for the
leader's record on the target (:mod:`~migration.postgres.copy.share`), imports the leader's
snapshot, and copies parts with its workers, each claimed in the transaction that loads it, until
no part is left to claim. It never touches the schema, an index or post-data.

A helper killed mid-part leaves that part's claim with its rolled-back transaction: the leader
(or another helper) copies it. A leader gone leaves its snapshot unimportable: the helper stops
with an error, and the leader's next ``--resume`` copies what is left.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path

import psycopg

from migration.errors import DatabaseMissingError, FerryError, ResumeError, ToolError, UsageError
from migration.files import replace_file
from migration.postgres.catalog import TableInfo, server_major
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import PgEndpoint, parse_url
from migration.postgres.copy.copylock import COPY_APPLICATION_NAME, copy_lock_held
from migration.postgres.copy.data import WorkerConnections, copy_claimed_part
from migration.postgres.copy.model import HelpResult
from migration.postgres.copy.plan import Part
from migration.postgres.copy.share import SharedCopy, done_markers, join_share, read_share
from migration.postgres.copy.snapshot import SourceSnapshot, begin_in_snapshot
from migration.postgres.copy.tools import find_client_tools
from migration.progress import ProgressSink

__all__ = ["help_copy"]

#: How often a helper looks for the leader's record while it waits.
POLL_SECONDS = 0.5
# Importing a snapshot whose exporting transaction ended: "invalid snapshot identifier" (22023), or
# "could not import the requested snapshot" (55000).
_SNAPSHOT_GONE = ("22023", "55000")


def help_copy(
    source_url: str,
    target_url: str,
    *,
    jobs: int,
    progress: ProgressSink,
    stop: Callable[[], bool],
    wait_seconds: float = 600,
    status_file: Path | None = None,
) -> HelpResult:
    """Copy parts of the shared copy into *target_url* until none is left to claim.

    :param source_url: the copy's source (the leader's, by host, port and database).
    :param target_url: the copy's target, where the leader records its plan and snapshot.
    :param jobs: parallel COPY streams.
    :param progress: where progress goes.
    :param stop: true once the helper should end: it finishes the parts in flight, claims no more.
    :param wait_seconds: how long to wait for the leader's record to appear (or, when the leader that
        recorded it is gone, for its resume to record a new snapshot).
    :param status_file: where ``{"phase", "parts", "rows", "bytes"}`` is written as the helper goes.
    :raises ResumeError: no shared copy appeared in time, one from another source, or its leader is gone.
    """
    started = time.monotonic()
    if jobs < 1:
        raise UsageError(f"help_copy: jobs must be at least 1, not {jobs}")
    source = parse_url(source_url, "source")
    target = parse_url(target_url, "target")
    helper = _Helper(source, target, progress, stop, status_file)
    helper.status("waiting")
    try:
        share = _join(source, target, stop, wait_seconds)
        if share is not None:
            helper.run(share, jobs)
    except BaseException:
        helper.status("failed")
        raise
    helper.result.seconds = time.monotonic() - started
    helper.status("done")
    return helper.result


def _join(source: PgEndpoint, target: PgEndpoint, stop: Callable[[], bool], wait_seconds: float) -> SharedCopy | None:
    """The shared copy to help, its snapshot importable; ``None`` when stopped first.

    :raises ResumeError: none within *wait_seconds*.
    """
    deadline = time.monotonic() + wait_seconds
    stale: str | None = None
    share = _await_share(source, target, stop, deadline, stale)
    while share is not None and not _importable(source, share.snapshot):
        # Its leader is gone: a resume of it, maybe on its way, records a new snapshot.
        stale = share.snapshot.snapshot_id
        share = _await_share(source, target, stop, deadline, stale)
    if share is not None or stop():
        return share
    if stale:
        raise _leader_gone(target)
    raise ResumeError(
        f"no shared copy to help in this database after waiting {wait_seconds:g} s "
        "(the leader copies with CopyOptions.shared)",
        side="target",
    )


def _await_share(
    source: PgEndpoint, target: PgEndpoint, stop: Callable[[], bool], deadline: float, stale: str | None
) -> SharedCopy | None:
    """The leader's record once it is on the target (one not of the *stale* snapshot), or ``None`` when
    stopped or out of time."""
    while True:
        share = _read_share(target)
        if share is not None and share.snapshot.snapshot_id != stale:
            # The user in the URL may differ (a task's own role): the server and database may not.
            if _where(share.source) != _where(source.display):
                raise ResumeError(
                    f"the shared copy into this database comes from {share.source}, not {source.display}",
                    side="target",
                )
            return share
        left = deadline - time.monotonic()
        if stop() or left <= 0:
            return None
        time.sleep(min(POLL_SECONDS, left))


def _importable(source: PgEndpoint, snapshot: SourceSnapshot) -> bool:
    """Whether *snapshot* can still be imported: its leader's exporting transaction is open."""
    with connect(source, autocommit=True) as conn:
        try:
            with pg_errors("source", source):
                begin_in_snapshot(conn, snapshot)
        except FerryError as exc:
            if _snapshot_gone(exc):
                return False
            raise
    return True


def _leader_gone(target: PgEndpoint) -> ResumeError:
    return ResumeError(
        f"the copy into {target.display} lost its leader (its snapshot on the source is gone): "
        "the leader's next run with --resume copies what is left",
        side="target",
    )


def _read_share(target: PgEndpoint) -> SharedCopy | None:
    try:
        with connect(target, autocommit=True) as conn, pg_errors("target", target):
            return read_share(conn)
    except DatabaseMissingError:
        return None  # the leader creates it (--create-database) before anything else


def _where(display: str) -> str:
    return display.rsplit("@", 1)[-1]


class _Helper:
    """One helper's workers, and what they copied."""

    def __init__(
        self,
        source: PgEndpoint,
        target: PgEndpoint,
        progress: ProgressSink,
        stop: Callable[[], bool],
        status_file: Path | None,
    ) -> None:
        self.source, self.target, self.progress, self.stop = source, target, progress, stop
        self.status_file = status_file
        self.result = HelpResult()
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._parts: dict[str, tuple[Part, TableInfo, bool]] = {}
        self._share: SharedCopy | None = None
        #: How this helper is known among those that joined (tasks in containers share process numbers).
        self.name = f"{COPY_APPLICATION_NAME}:{uuid.uuid4().hex[:12]}"

    def status(self, phase: str) -> None:
        if self.status_file is None:
            return
        with self._lock:
            data = {"phase": phase, "parts": self.result.parts, "rows": self.result.rows,
                    "bytes": self.result.bytes, "at": time.time()}  # fmt: skip
            replace_file(self.status_file, json.dumps(data))

    def run(self, share: SharedCopy, jobs: int) -> None:
        self._share = share
        self._parts = {key: (p.part, p.table(), p.binary) for key, p in share.parts.items()}
        with connect(self.target, autocommit=True) as conn, pg_errors("target", self.target):
            done = {m[0] for m in done_markers(conn, list(share.parts))}
        left = [p.part for key, p in share.parts.items() if key not in done]
        self.progress.message(
            f"helping the copy into {self.target.display}: {len(left)} of {len(share.parts)} parts left"
        )
        self.progress.set_total(sum(p.est_bytes for p in left))
        self.status("copying")
        workers = WorkerConnections(self.source, self.target, share.snapshot, share.owner, _psql(self.source))
        pool = ThreadPoolExecutor(jobs, thread_name_prefix="ferry-help")
        try:
            pending = {pool.submit(self._work, workers) for _ in range(jobs)}
            futures = list(pending)
            while pending:
                # A timeout: the main thread stays free to take a second signal (stop at once).
                finished, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_EXCEPTION)
                failed = [f.exception() for f in futures if f in finished and f.exception() is not None]
                if failed and failed[0] is not None:
                    raise failed[0]
        except BaseException:
            self._halt.set()
            workers.cancel()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            workers.close()

    def _work(self, workers: WorkerConnections) -> None:
        """On a worker thread: claim and copy parts until none is left (or the helper stops)."""
        try:
            workers.pair()  # the leader's snapshot imported, or the reason it cannot be
            with pg_errors("target", self.target), connect(self.target, autocommit=True) as conn:
                join_share(conn, self.name)
            while not self.stop() and not self._halt.is_set():
                with pg_errors("target", self.target):
                    leader_alive = copy_lock_held(workers.pair()[1])
                if not leader_alive:
                    # Its record left behind, the leader died: its next run (a resume, from another
                    # snapshot) decides what stays, so stop here. Without it, the copy is over.
                    if self._still_shared():
                        raise _leader_gone(self.target)
                    return
                copied = copy_claimed_part(workers, self._prepare, self.progress.advance, COPY_APPLICATION_NAME,
                                           crash_step="helper-part-loading")  # fmt: skip
                if copied is None:
                    return
                key = copied.part.key
                with self._lock:
                    self.result.keys.append(key)
                    self.result.rows += copied.rows
                    self.result.bytes += copied.bytes
                self.progress.finish_item(key, f"copied {key}: {copied.rows} rows, {copied.bytes} bytes "
                                               f"in {copied.seconds:.1f} s")  # fmt: skip
                self.status("copying")
        except FerryError as exc:
            if self._halt.is_set() or not _snapshot_gone(exc):
                raise
            if self._still_shared():
                raise _leader_gone(self.target) from exc
            # The copy ended (or started again) meanwhile: nothing of this one is left to help with.

    def _prepare(self, key: str) -> tuple[Part, TableInfo, bool]:
        part, table, binary = self._parts[key]
        self.progress.start_item(key, key, part.est_bytes, 0)
        return part, table, binary

    def _still_shared(self) -> bool:
        """Whether the record this helper joined is still there, unchanged (its leader died, then)."""
        share = _read_share(self.target)
        joined = self._share
        return share is not None and joined is not None and share.snapshot.snapshot_id == joined.snapshot.snapshot_id


def _snapshot_gone(exc: FerryError) -> bool:
    """*exc* says the snapshot could not be imported (from libpq, or from a psql child's message)."""
    if exc.side != "source":
        return False
    text = str(exc)
    cause = exc.__cause__
    coded = isinstance(cause, psycopg.Error) and cause.diag.sqlstate in _SNAPSHOT_GONE
    return (coded and "snapshot" in text) or "invalid snapshot identifier" in text or "could not import" in text


def _psql(source: PgEndpoint) -> Path | None:
    """psql reads big parts faster (see :mod:`~migration.postgres.copy.data`); without it (or without one that
    reaches the source as ferry does: over TLS if so, not older than it), libpq does."""
    try:
        with connect(source) as probe, pg_errors("source", source):
            over_tls, major = bool(probe.pgconn.ssl_in_use), server_major(probe)
        return find_client_tools(at_least=major, tls=over_tls).psql
    except ToolError:
        return None
