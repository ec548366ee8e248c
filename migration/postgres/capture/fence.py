"""The fence: every role's writes stop, the last ones are drained, and it is proven.

Setting a role read-only (what pg_easy_replicate does) stops that role only, and any client
may override ``default_transaction_read_only``. The triggers capture already has on every
table can refuse writes for everyone instead: the fence replaces their functions with ones
that raise (tables without a key carry a fence-only trigger), and records itself in the
fence row. No table lock is taken: every session sees a function's new body at its next
statement, even inside a transaction that began before. A transaction opened before the fence
may still hold a snapshot that does not see it: those get a short grace and are then ended.
Then a marker entry is written to the log; when the follower has applied and cleared it,
every write acknowledged before the fence is on the target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from psycopg import sql

from migration.errors import PreconditionError
from migration.postgres.capture.apply import apply_batch
from migration.postgres.capture.install import (
    CaptureSettings,
    require_current_layout,
    schema_state,
    set_functions_fenced,
)
from migration.postgres.catalog import Conn
from migration.postgres.sessions import end_sessions

__all__ = ["FenceResult", "drain_to_marker", "lower_fence", "raise_fence"]

_OLDER = """
SELECT pid FROM pg_catalog.pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_catalog.pg_backend_pid()
   AND backend_type = 'client backend' AND xact_start IS NOT NULL AND xact_start < %s
"""


@dataclass(frozen=True)
class FenceResult:
    """The fence is up: ``ended`` sessions were ended after the grace; ``marker`` is the log entry to drain to."""

    fenced_at: float
    ended: int
    marker: int
    seconds: float


def raise_fence(source: Conn, settings: CaptureSettings | None = None, *, grace_seconds: float = 2.0) -> FenceResult:
    """Stop every role's writes on the source (*source*: autocommit), end what was open across it, mark the log.

    :raises PreconditionError: capture is not installed, or open transactions could not be ended.
    """
    settings = settings or CaptureSettings()
    started = time.monotonic()
    s = sql.Identifier(settings.schema)
    if schema_state(source, settings.schema) != "ours":
        raise PreconditionError("change capture is not installed: the fence needs its triggers", side="source")
    require_current_layout(source, settings.schema)
    with source.transaction():
        source.execute(sql.SQL("INSERT INTO {}.fence DEFAULT VALUES ON CONFLICT (id) DO NOTHING").format(s))
        set_functions_fenced(source, settings.schema, True)
    # Transactions that began before this moment are all ended, readers too: one that already holds
    # a table's lock (an UPDATE that matched nothing takes it without writing) may go on calling the
    # function it loaded before the fence, and commit a logged write after the marker.
    row = source.execute(
        "SELECT pg_catalog.clock_timestamp(), extract(epoch FROM pg_catalog.clock_timestamp())"
    ).fetchone()
    assert row is not None
    fenced_at, fenced_epoch = row[0], float(row[1])
    deadline = time.monotonic() + grace_seconds
    while source.execute(_OLDER, (fenced_at,)).fetchone() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    ended = end_sessions(
        source,
        _OLDER,
        (fenced_at,),
        wait_seconds=10,
        error=PreconditionError(
            "transactions opened before the fence could not be ended (ferry's role may not signal them)",
            side="source",
        ),
    )
    # Written after the fence and after every older transaction ended: reaching it on the
    # target proves every write acknowledged before the fence is there.
    marker = source.execute(sql.SQL("INSERT INTO {}.log (rel, op) VALUES (0, 'M') RETURNING id").format(s)).fetchone()
    assert marker is not None
    return FenceResult(fenced_epoch, ended, int(marker[0]), time.monotonic() - started)


def drain_to_marker(source: Conn, target: Conn, marker: int, settings: CaptureSettings | None = None) -> int:
    """Apply batches until the marker entry has been applied and cleared; returns entries applied."""
    settings = settings or CaptureSettings()
    s = sql.Identifier(settings.schema)
    applied = 0
    while True:
        applied += apply_batch(source, target, settings.schema).entries
        still = source.execute(sql.SQL("SELECT EXISTS (SELECT FROM {}.log WHERE id <= %s)").format(s), (marker,))
        row = still.fetchone()
        if row is not None and not row[0]:
            return applied


def lower_fence(source: Conn, settings: CaptureSettings | None = None) -> None:
    """Let writes go on again (rollback, or a run that did not switch)."""
    settings = settings or CaptureSettings()
    if schema_state(source, settings.schema) == "ours":
        with source.transaction():
            source.execute(sql.SQL("DELETE FROM {}.fence").format(sql.Identifier(settings.schema)))
            set_functions_fenced(source, settings.schema, False)
