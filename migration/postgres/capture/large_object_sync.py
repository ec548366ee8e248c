"""Large objects inside the freeze: no trigger sees them, so those that differ are copied again.

``pg_largeobject`` is a system catalog: capture cannot put a trigger on it, and the follow never
carries a large object written while the app was live. Inside the freeze, with writes stopped,
each side's large objects are listed with a digest of their contents; those missing or different
on the target are written again from the source, and those the source no longer has are removed.
It costs a read of every large object (most Heroku apps have none), in one target transaction.
"""

from __future__ import annotations

from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import parse_url
from migration.postgres.copy.large_object_copy import write_large_object

__all__ = ["large_object_count", "large_object_digests", "sync_large_objects"]

_DIGESTS = "SELECT oid, pg_catalog.md5(pg_catalog.lo_get(oid)) FROM pg_catalog.pg_largeobject_metadata"


def large_object_count(source_url: str) -> int:
    """How many large objects the source holds (the fence cannot stop writes to them)."""
    source = parse_url(source_url, "source")
    with connect(source, autocommit=True) as conn, pg_errors("source", source):
        row = conn.execute("SELECT count(*) FROM pg_catalog.pg_largeobject_metadata").fetchone()
    return int(row[0]) if row else 0


def large_object_digests(conn: Conn) -> dict[int, str]:
    """Every large object's oid and a digest of its contents: what the sync and the frozen proof compare."""
    return {int(r[0]): str(r[1]) for r in conn.execute(_DIGESTS)}


def sync_large_objects(source: Conn, target: Conn) -> int:
    """Make the target's large objects the source's; returns how many were written or removed."""
    wanted = large_object_digests(source)
    present = large_object_digests(target)
    stale = sorted(oid for oid in wanted if present.get(oid) != wanted[oid])
    gone = sorted(present.keys() - wanted.keys())
    if not stale and not gone:
        return 0
    with target.transaction():
        for oid in gone:
            target.execute("SELECT pg_catalog.lo_unlink(%s)", (oid,))
        for oid in stale:
            if oid in present:
                target.execute("SELECT pg_catalog.lo_unlink(%s)", (oid,))
            write_large_object(source, target, oid)
    return len(stale) + len(gone)
