"""The exported snapshot every worker shares, kept open for the whole copy.

The snapshot and its position (transaction snapshot and WAL LSN) are a first-class
value: change capture, added later, applies changes from exactly this point onward.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg.rows import TupleRow

from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import PgEndpoint

__all__ = ["SourceSnapshot", "begin_in_snapshot", "exported_snapshot"]


@dataclass(frozen=True)
class SourceSnapshot:
    """Where in the source's history the copy reads from.

    :param snapshot_id: the ``pg_export_snapshot()`` name, valid while the copy runs.
    :param txid_snapshot: ``pg_current_snapshot()`` — which transactions the copy sees.
    :param wal_lsn: ``pg_current_wal_lsn()`` when taken (``None`` where not allowed).
    :param taken_at: when it was taken (UTC).
    """

    snapshot_id: str
    txid_snapshot: str
    wal_lsn: str | None
    taken_at: datetime

    def as_dict(self) -> dict[str, str | None]:
        return {
            "snapshot_id": self.snapshot_id,
            "txid_snapshot": self.txid_snapshot,
            "wal_lsn": self.wal_lsn,
            "taken_at": self.taken_at.isoformat(),
        }


def begin_in_snapshot(conn: psycopg.Connection[TupleRow], snapshot: SourceSnapshot) -> None:
    """Start a read-only transaction on *conn* that sees exactly *snapshot*."""
    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    conn.execute(f"SET TRANSACTION SNAPSHOT '{snapshot.snapshot_id}'")
    # Without this, rows hidden by a policy would be skipped silently instead of failing.
    conn.execute("SET LOCAL row_security = off")


@contextmanager
def exported_snapshot(
    source: PgEndpoint,
) -> Iterator[tuple[SourceSnapshot, psycopg.Connection[TupleRow]]]:
    """Export a snapshot on *source* and keep its transaction open until the block ends.

    Yields the snapshot and the holding connection, which may run catalog queries in it.
    """
    conn = connect(source, autocommit=True)
    try:
        with pg_errors("source", source):
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            conn.execute("SET LOCAL row_security = off")
            row = conn.execute("SELECT pg_export_snapshot(), pg_current_snapshot()::text").fetchone()
            assert row is not None
            snapshot_id, txid_snapshot = str(row[0]), str(row[1])
            wal_lsn: str | None
            try:
                conn.execute("SAVEPOINT lsn")
                lsn_row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
                wal_lsn = str(lsn_row[0]) if lsn_row else None
                conn.execute("RELEASE SAVEPOINT lsn")
            except psycopg.Error:
                conn.execute("ROLLBACK TO SAVEPOINT lsn")
                wal_lsn = None
        yield (
            SourceSnapshot(snapshot_id, txid_snapshot, wal_lsn, datetime.now(UTC)),
            conn,
        )
    finally:
        conn.close()
