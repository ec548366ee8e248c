"""The leader's data phase of a shared copy: parts claimed on the target, some copied by helpers.

Each copy worker claims its next part on the target (:func:`~migration.postgres.copy.data.copy_claimed_part`)
instead of being handed one, so the leader's workers and the helpers' take parts from one list,
biggest critical path first. The leader learns of the parts a helper copied by reading their done
markers every :data:`POLL_SECONDS`; a table whose last part is marked, whoever copied it, gets its
indexes and ANALYZE as in an unshared copy. A copy slot that found nothing to claim tries again at
each poll while parts remain undone: a helper killed mid-part leaves its part claimable, and the
leader then copies it itself. Large objects are the leader's alone, once no part is left to claim.
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from migration.postgres.catalog import Conn, TableInfo
from migration.postgres.connection import pg_errors
from migration.postgres.copy.copylock import COPY_APPLICATION_NAME
from migration.postgres.copy.data import PartResult, copy_claimed_part, open_target_session
from migration.postgres.copy.plan import Part
from migration.postgres.copy.scheduler import DataPhase
from migration.postgres.copy.share import done_markers, joined_helpers

__all__ = ["POLL_SECONDS", "SharedDataPhase"]

#: How often the leader reads the markers of the parts it waits for, and retries a claim.
POLL_SECONDS = 0.5


class SharedDataPhase(DataPhase):
    """:class:`DataPhase` whose copy workers claim parts, with helpers copying some of them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Every part not yet done, by key (the main thread's: only it changes this).
        self.undone: dict[str, Part] = {}
        #: Parts this leader's workers claimed: added inside the claim's transaction, so before its marker shows.
        self.mine: set[str] = set()
        #: Copy slots whose last claim found nothing to claim.
        self.idle = 0
        self._claiming = 0
        self._polled = 0.0
        self._poll_conn: Conn | None = None
        self._told_waiting = False

    def run(self, parts: list[Part], done: dict[str, tuple[int, int, float]], lo_oids: list[int]) -> None:
        self._parts = {p.key: p for p in parts}
        try:
            super().run(parts, done, lo_oids)
        finally:
            if self._poll_conn is not None:
                self._poll_conn.close()

    def _schedule(self, part: Part) -> None:
        self.undone[part.key] = part

    def _started(self) -> None:
        self._await_helpers()
        for _ in range(min(self.options.jobs, len(self.undone))):
            self._submit_claim()
        self.idle = self.options.jobs - self._claiming
        if not self.undone:
            self._submit_large_objects()

    def _await_helpers(self) -> None:
        """The helpers started beside this copy join before a part is claimed, or the copy goes on without
        those still missing after :attr:`~CopyOptions.helpers_wait_seconds`."""
        expected, options = self.options.helpers, self.options
        if expected < 1 or not self.undone:
            return
        deadline = time.monotonic() + options.helpers_wait_seconds
        with open_target_session(self.target, options.owner) as conn, pg_errors("target", self.target):
            while (joined := joined_helpers(conn)) < expected and time.monotonic() < deadline:
                time.sleep(0.1)
        self.progress.message(f"{joined} of {expected} helpers joined the shared copy")

    def _submit_claim(self) -> None:
        self._claiming += 1
        self.submit(self.copy_pool, self._claim, self._claimed)

    def _claim(self) -> PartResult | None:
        """On a copy worker: claim, copy and mark the next part."""
        return copy_claimed_part(self.workers, self._prepare, self.progress.advance, COPY_APPLICATION_NAME)

    def _prepare(self, key: str) -> tuple[Part, TableInfo, bool]:
        """On a copy worker, inside the claim's transaction: the claimed part is ours from now on."""
        part = self._parts[key]
        table = self.tables[part.table]
        with self._lock:
            self.mine.add(key)
            if part.table not in self.first_start:
                self.first_start[part.table] = time.monotonic()
                self.progress.start_item(part.table, part.table, table.bytes, table.est_rows)
        return part, table, self.binary and table.binary_safe

    def _claimed(self, result: PartResult | None) -> None:
        self._claiming -= 1
        if result is None:
            self.idle += 1
            # No part left to claim: the slot copies the large objects while helpers finish theirs.
            self._submit_large_objects()
            if self.undone and not self._told_waiting:
                self._told_waiting = True
                self.progress.message(f"no part left to claim: waiting for the {len(self.undone)} in progress")
            return
        self.undone.pop(result.part.key, None)
        self._copied(result.part, result)
        if self.undone:
            self._submit_claim()
        else:
            self.idle += 1

    def _elsewhere(self) -> bool:
        return bool(self.undone)

    def _next_finished(self) -> set[Future[Any]]:
        if not self.pending:
            time.sleep(POLL_SECONDS)
            return set()
        finished, _ = wait(list(self.pending), timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
        return finished

    def _tick(self) -> None:
        """Count in the parts helpers marked done; send idle slots after the parts left."""
        now = time.monotonic()
        if not self.undone or now - self._polled < POLL_SECONDS:
            return
        self._polled = now
        if self._poll_conn is None:
            self._poll_conn = open_target_session(self.target, None)
        with self._lock:
            others = [key for key in self.undone if key not in self.mine]
        with pg_errors("target", self.target):
            marked = done_markers(self._poll_conn, others) if others else []
        with self._lock:
            # Read again: a part our worker claimed after the list above and committed before the query is
            # ours (its key joined the set before its marker could show), its result on the way.
            mine = set(self.mine)
        for key, rows, nbytes, _seconds, _copier in marked:
            if key not in mine and key in self.undone:
                self._helped(self.undone.pop(key), rows, nbytes)
        # A part left undone and unclaimed by us is a helper's, or was: a helper killed mid-part left it claimable.
        while self.idle and self.undone:
            self.idle -= 1
            self._submit_claim()

    def _helped(self, part: Part, rows: int, nbytes: int) -> None:
        result = self.results[part.table]
        result.rows += rows
        result.bytes += nbytes
        result.helped_parts += 1
        with self._lock:
            if part.table not in self.first_start:
                self.first_start[part.table] = time.monotonic()
                self.progress.start_item(part.table, part.table, self.tables[part.table].bytes, 0)
        self.progress.advance(part.table, rows, nbytes)
        self._part_done(part.table)
