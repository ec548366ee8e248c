"""The fence: every role's writes stop, the last ones are drained, and it is proven.

Setting a role read-only (what pg_easy_replicate does) stops that role only, and any client
may override ``default_transaction_read_only``. The triggers capture already has on every
table can refuse writes for everyone instead: the fence replaces their functions with ones
that raise, and records itself in the fence row. The triggers fire ``ALWAYS``, so
``session_replication_role = replica`` does not pass them; a statement is refused before it
touches a row. No table lock is taken: every session sees a function's new body at its next
statement, even inside a transaction that began before. A transaction opened before the fence
may still hold a snapshot that does not see it: those get a short grace and are then ended. A
prepared transaction outlives its session and cannot be ended so: the fence is refused (and
lowered again) while one is open in the database. Then a :class:`~.witness.Witness` is taken of
what the capture does not control, and a marker entry is written to the log; when it has been
applied and cleared, every write acknowledged before the fence is on the target.

What the fence cannot stop — the table owner disabling a trigger, DDL, large objects — the
witness notices before the switch (:func:`~.witness.check_witness`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg
from psycopg import sql

from migration.errors import PreconditionError
from migration.postgres.capture.apply import apply_batch
from migration.postgres.capture.claim import claimed
from migration.postgres.capture.install import CaptureSettings, set_functions_fenced
from migration.postgres.capture.inventory import require_complete, require_current_layout, schema_state
from migration.postgres.capture.witness import Witness, read_identity, take_witness
from migration.postgres.catalog import Conn
from migration.postgres.footprint import CAPTURE_FENCE, CAPTURE_LOG, in_capture

__all__ = ["FenceResult", "drain_to_marker", "lower_fence", "raise_fence"]

# Every open transaction holds a lock on its own virtual transaction id, which every role sees in
# pg_locks (pg_stat_activity hides the xact_start, state and backend type of other roles' sessions
# from a role like Heroku's). A session with no user is the server's own (autovacuum, a background
# worker): it writes no row of the app's.
_OPEN = """
SELECT l.pid, l.virtualxid FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'virtualxid' AND l.granted AND a.datname = current_database() AND a.usename IS NOT NULL
   AND l.pid <> pg_catalog.pg_backend_pid() AND coalesce(a.backend_type, 'client backend') = 'client backend'
"""
_STILL_OPEN = """
SELECT l.pid FROM pg_catalog.pg_locks l
 WHERE l.locktype = 'virtualxid' AND l.granted AND (l.pid, l.virtualxid) IN (SELECT * FROM unnest(%s::int[], %s::text[]))
"""
# A transaction that has written holds a lock on its own transaction id (visible to every role too).
_WRITING = """
SELECT EXISTS (SELECT FROM pg_catalog.pg_locks l WHERE l.locktype = 'transactionid' AND l.granted
                  AND l.mode = 'ExclusiveLock' AND l.pid = %s)
"""
_PREPARED = (
    "SELECT gid, prepared FROM pg_catalog.pg_prepared_xacts WHERE database = current_database() ORDER BY prepared"
)


@dataclass(frozen=True)
class FenceResult:
    """The fence is up: ``ended`` sessions were ended after the grace; ``marker`` is the log entry to
    drain to; ``witness`` what the source looked like as its writes stopped."""

    fenced_at: float
    ended: int
    marker: int
    seconds: float
    witness: Witness


def raise_fence(source: Conn, settings: CaptureSettings | None = None, *, grace_seconds: float = 2.0) -> FenceResult:
    """Stop every role's writes on the source (*source*: autocommit), end what was open across it, mark the log.

    :raises PreconditionError: capture is not installed or no longer covers every table, open
        transactions could not be ended, or a prepared transaction is open (the fence is then lowered
        again: the app keeps writing).
    """
    settings = settings or CaptureSettings()
    started = time.monotonic()
    fence, log = in_capture(settings.schema, CAPTURE_FENCE), in_capture(settings.schema, CAPTURE_LOG)
    if schema_state(source, settings.schema) != "ours":
        raise PreconditionError("change capture is not installed: the fence needs its triggers", side="source")
    require_current_layout(source, settings.schema)
    require_complete(source, settings.schema, "the fence (writes to what it does not cover would pass it)")
    with source.transaction():
        source.execute(sql.SQL("INSERT INTO {} DEFAULT VALUES ON CONFLICT (id) DO NOTHING").format(fence))
        set_functions_fenced(source, settings.schema, True)
    try:
        # As the fence takes hold: what changes after this, the witness sees (DDL included, even by a
        # transaction that began before the fence and commits during its grace).
        identity = read_identity(source, settings.schema)
        older = [(int(r[0]), str(r[1])) for r in source.execute(_OPEN)]
        _, fenced_epoch = _now(source)
        ended = _end_older(source, older, grace_seconds)
        _refuse_prepared(source, grace_seconds)
        witness = take_witness(source, identity)
        # Written after the fence and after every older transaction ended: reaching it on the
        # target proves every write acknowledged before the fence is there.
        row = source.execute(
            sql.SQL("INSERT INTO {} (rel, op) VALUES (0, 'M') RETURNING id, pg_catalog.txid_current()").format(log)
        ).fetchone()
        assert row is not None
        witness = witness.with_ours(int(row[1]))
    except BaseException:
        lower_fence(source, settings)  # the app must not stay frozen by a freeze that did not happen
        raise
    return FenceResult(fenced_epoch, ended, int(row[0]), time.monotonic() - started, witness)


def _now(source: Conn) -> tuple[object, float]:
    row = source.execute(
        "SELECT pg_catalog.clock_timestamp(), extract(epoch FROM pg_catalog.clock_timestamp())"
    ).fetchone()
    assert row is not None
    return row[0], float(row[1])


def _end_older(source: Conn, older: list[tuple[int, str]], grace_seconds: float) -> int:
    """Transactions that were open as the fence went up are all ended, readers too, whatever their role:
    one that already holds a table's lock (an UPDATE that matched nothing takes it without writing)
    may go on calling the function it loaded before the fence, and commit a logged write after the
    marker. Each is known by its virtual transaction id: the same session's next transaction is left alone."""
    if not older:
        return 0

    def params() -> tuple[list[int], list[str]]:
        return [pid for pid, _ in older], [vxid for _, vxid in older]

    deadline, pause = time.monotonic() + grace_seconds, 0.002
    # The app's transactions last milliseconds, and the app waits for every one of these: poll often at first.
    while source.execute(_STILL_OPEN, params()).fetchone() is not None and time.monotonic() < deadline:
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
    left = [int(r[0]) for r in source.execute(_STILL_OPEN, params())]
    for pid in left:
        try:
            with source.transaction():
                source.execute("SELECT pg_catalog.pg_terminate_backend(%s)", (pid,))
        except psycopg.errors.InsufficientPrivilege:
            # A superuser's session: not ours to end. Harmless while it has written nothing (its next
            # write meets the fence); refused when it holds writes that could commit past the marker.
            written = source.execute(_WRITING, (pid,)).fetchone()
            if written and written[0]:
                raise PreconditionError(
                    f"a transaction with writes open across the fence (server pid {pid}) belongs to a role "
                    "ferry's may not signal (a superuser's): end it, then freeze again",
                    side="source",
                ) from None
            older = [(p, vxid) for p, vxid in older if p != pid]
    deadline = time.monotonic() + 10
    while source.execute(_STILL_OPEN, params()).fetchone() is not None:
        if time.monotonic() > deadline:
            raise PreconditionError("transactions opened before the fence did not end once signalled", side="source")
        time.sleep(0.05)
    return len(left)


def _refuse_prepared(source: Conn, grace_seconds: float) -> None:
    """A transaction prepared before the fence commits whenever someone says COMMIT PREPARED, perhaps
    after the drain: its writes would be lost. Given the grace to end, then refused."""
    deadline = time.monotonic() + grace_seconds
    while (row := source.execute(_PREPARED).fetchone()) is not None:
        if time.monotonic() >= deadline:
            raise PreconditionError(
                f"a prepared transaction is open on the source (gid {row[0]!r}, prepared {row[1]}): its writes "
                "would commit past the fence; COMMIT PREPARED or ROLLBACK PREPARED it, then freeze again",
                side="source",
            )
        time.sleep(0.05)


def drain_to_marker(source: Conn, target: Conn, marker: int, settings: CaptureSettings | None = None) -> int:
    """Apply batches until the marker entry has been applied and cleared; returns entries applied.

    :raises PreconditionError: a follower still applies this log or into this target."""
    settings = settings or CaptureSettings()
    log = in_capture(settings.schema, CAPTURE_LOG)
    applied = 0
    with claimed(source, target, settings.schema):
        while True:
            applied += apply_batch(source, target, settings.schema).entries
            still = source.execute(sql.SQL("SELECT EXISTS (SELECT FROM {} WHERE id <= %s)").format(log), (marker,))
            row = still.fetchone()
            if row is not None and not row[0]:
                return applied


def lower_fence(source: Conn, settings: CaptureSettings | None = None) -> None:
    """Let writes go on again (rollback, or a run that did not switch)."""
    settings = settings or CaptureSettings()
    if schema_state(source, settings.schema) == "ours":
        with source.transaction():
            source.execute(sql.SQL("DELETE FROM {}").format(in_capture(settings.schema, CAPTURE_FENCE)))
            set_functions_fenced(source, settings.schema, False)
