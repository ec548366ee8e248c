"""Large objects: created with their source oids and filled in chunks, in batches."""

from __future__ import annotations

from migration.crashpoints import crashpoint
from migration.postgres.catalog import Conn
from migration.postgres.connection import pg_errors
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.copy.data import WorkerConnections
from migration.postgres.copy.state import part_marker_sql

__all__ = ["LO_BATCH", "copy_large_object_batch", "large_object_batches", "write_large_object"]

LO_BATCH = 500
_CHUNK = 1 << 20


def large_object_batches(oids: list[int]) -> list[list[int]]:
    return [oids[i : i + LO_BATCH] for i in range(0, len(oids), LO_BATCH)]


def write_large_object(src: Conn, dst: Conn, oid: int, source: PgEndpoint | None = None) -> int:
    """Create *oid* on the target (it must not exist there) with the source's contents, in chunks;
    returns its size. The source's errors name the source; the target's are the caller's to name."""
    dst.execute("SELECT pg_catalog.lo_create(%s)", (oid,))
    offset = 0
    while True:
        with pg_errors("source", source):
            row = src.execute("SELECT pg_catalog.lo_get(%s, %s, %s)", (oid, offset, _CHUNK)).fetchone()
        data = bytes(row[0]) if row and row[0] is not None else b""
        if data:
            dst.execute("SELECT pg_catalog.lo_put(%s, %s, %s)", (oid, offset, data))
            offset += len(data)
        if len(data) < _CHUNK:
            return offset


def copy_large_object_batch(conns: WorkerConnections, oids: list[int], marker_key: str) -> tuple[int, int]:
    """Copy *oids* in one target transaction, with the batch's done marker."""
    src, dst = conns.pair()
    total = 0
    with pg_errors("target", conns.target), dst.transaction():
        for oid in oids:
            dst.execute(
                "SELECT pg_catalog.lo_unlink(%s) FROM pg_catalog.pg_largeobject_metadata WHERE oid = %s",
                (oid, oid),
            )
            total += write_large_object(src, dst, oid, conns.source)
        dst.execute(part_marker_sql(), (marker_key, len(oids), total, 0.0))
        crashpoint("large-objects-loading")
    crashpoint("large-objects")
    return len(oids), total
