"""The random writers: each one app process writing a random mix of :mod:`bench.chaos.handoffs` and
:mod:`bench.chaos.writes`; every committed transaction leaves a ledger row, none may be missing
on the target."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

import psycopg

from bench.chaos.handoffs import HandoffWrites
from bench.chaos.writer_base import Skip, WriterStats
from bench.chaos.writes import AppWrites

#: What a busy app's concurrent writes run into: counted as refused, not as failures.
EXPECTED = (
    psycopg.errors.IntegrityError,  # unique, foreign key, exclusion, not null, check
    psycopg.errors.DeadlockDetected,
    psycopg.errors.SerializationFailure,
    psycopg.errors.LockNotAvailable,
    psycopg.errors.ObjectNotInPrerequisiteState,  # lo_* on an unlinked object
    psycopg.errors.UndefinedObject,  # a large object unlinked meanwhile
    psycopg.errors.CardinalityViolation,  # MERGE matching a row twice
)


class Writer(HandoffWrites, AppWrites):
    """One app process: a random mix of writes, each committed transaction acknowledged in the ledger."""

    def __init__(self, index: int, url: str, seed: int, stop: threading.Event, version: int) -> None:
        super().__init__(index, url, seed, stop, version)
        ops: list[tuple[Callable[[], None], float]] = [
            (self.insert_user, 10), (self.update_profile, 10), (self.org_key_update, 1.5), (self.delete_org, 0.7),
            (self.delete_user, 3), (self.delete_reinsert_user, 2), (self.delete_reinsert_session, 2),
            (self.swap_emails, 3), (self.rotate_emails, 3), (self.handoff_handle, 3), (self.rotate_seats, 3),
            (self.swap_seats, 2), (self.move_booking, 3), (self.insert_events, 8), (self.move_partition, 6),
            (self.swap_refs, 2), (self.bulk_events, 0.25), (self.bulk_update, 0.2), (self.truncate_sessions, 0.4),
            (self.truncate_partition, 0.1), (self.long_transaction, 0.8), (self.savepoints, 3), (self.merge, 4),
            (self.copy_in, 2), (self.invoices, 3), (self.swap_invoice_numbers, 2), (self.rotate_api_key, 2),
            (self.large_object, 0.8), (self.sequence_jump, 0.3), (self.upsert, 3), (self.cascade_session_user, 1),
            (self.move_shift, 3), (self.rotate_slugs, 2), (self.rate_periods, 3),
        ]  # fmt: skip
        self.ops = [op for op, _ in ops]
        self.weights = [w for _, w in ops]

    # -- plumbing ---------------------------------------------------------------------------

    def run(self) -> None:
        while not self.stop.is_set():
            op = self.rng.choices(self.ops, self.weights)[0]
            self.op = op.__name__
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = psycopg.connect(self.url, autocommit=True)
                op()
            except Skip:
                pass
            except EXPECTED as exc:
                self.stats.refused[type(exc).__name__] += 1
            except psycopg.errors.ReadOnlySqlTransaction:
                self.stats.refused["fenced"] += 1
            except psycopg.OperationalError:
                self.stats.ambiguous += 1
                self.conn = None
                time.sleep(0.05)
            except Exception as exc:  # a harness mistake, or something ferry's triggers did
                self.stats.unexpected.append(f"{self.op}: {type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
                if self.conn is not None:
                    with contextlib.suppress(Exception):
                        self.conn.close()
                self.conn = None
        if self.conn is not None:
            self.conn.close()


def ledger_missing(target: str, stats: list[WriterStats]) -> int:
    """Acknowledged writer transactions whose ledger row is not on the target."""
    missing = 0
    with psycopg.connect(target, autocommit=True) as conn:
        for writer, st in enumerate(stats):
            row = conn.execute(
                "SELECT count(*) FROM unnest(%s::bigint[]) AS a(n) "
                "WHERE NOT EXISTS (SELECT FROM public.ledger l WHERE l.writer = %s AND l.n = a.n)",
                (st.acked, writer),
            ).fetchone()
            missing += int(row[0]) if row else 0
    return missing
