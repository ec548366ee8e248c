"""Where a target's copy began, so a follow can tell whether capture was in place before it.

The follow brings every change *in the log*; a change made after the copy's snapshot but before
a table's capture trigger went in is in neither, and is lost. So a copy whose source carries
capture leaves, on the target, the snapshot it (first) read from; the follow checks that every
table's triggers were committed before that snapshot (the installing transaction of each table
is recorded on the source). A copy that began before capture was installed — or while an install
was still going — is refused, with one line saying to copy again.
"""

from __future__ import annotations

from psycopg import sql

from migration.errors import PreconditionError
from migration.postgres.capture.apply import FOLLOW_SCHEMA
from migration.postgres.catalog import Conn

__all__ = ["copied_views", "record_copy_origin", "record_views", "require_copied_after_install"]

_ORIGIN = f"{FOLLOW_SCHEMA}.copied"
#: The source's materialized views as the target's copy of each was made (``relfilenode``, populated):
#: one refreshed on the source since has another relfilenode, and the follow refreshes the target's.
_VIEWS = f"{FOLLOW_SCHEMA}.views"


def record_copy_origin(target: Conn, txid_snapshot: str, views: dict[str, tuple[int, bool]]) -> None:
    """In the last target transaction of a copy whose source carries capture (as its snapshot saw it):
    the first snapshot it read from, and the source's materialized views as that snapshot saw them."""
    target.execute(
        f"CREATE SCHEMA IF NOT EXISTS {FOLLOW_SCHEMA}; "
        f"CREATE TABLE IF NOT EXISTS {_ORIGIN} (id int PRIMARY KEY DEFAULT 1 CHECK (id = 1), snapshot text NOT NULL)"
    )
    target.execute(
        f"INSERT INTO {_ORIGIN} (snapshot) VALUES (%s) ON CONFLICT (id) DO UPDATE SET snapshot = excluded.snapshot",
        (txid_snapshot,),
    )
    target.execute(f"DROP TABLE IF EXISTS {_VIEWS}")
    record_views(target, views)


def record_views(target: Conn, views: dict[str, tuple[int, bool]]) -> None:
    """The source's views as the target's now stand (after the copy, or after the follow refreshed them)."""
    target.execute(
        f"CREATE TABLE IF NOT EXISTS {_VIEWS} (name text PRIMARY KEY, storage bigint NOT NULL, populated boolean NOT NULL)"
    )
    for name, (storage, populated) in views.items():
        target.execute(
            f"INSERT INTO {_VIEWS} VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE "
            "SET storage = excluded.storage, populated = excluded.populated",
            (name, storage, populated),
        )


def copied_views(target: Conn) -> dict[str, tuple[int, bool]]:
    """What :func:`record_views` last recorded (nothing, on a target copied before it did)."""
    row = target.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (_VIEWS,)).fetchone()
    if not (row and row[0]):
        return {}
    return {
        str(r[0]): (int(r[1]), bool(r[2])) for r in target.execute(f"SELECT name, storage, populated FROM {_VIEWS}")
    }


def require_copied_after_install(source: Conn, target: Conn, schema: str) -> None:
    """:raises PreconditionError: the target's copy began before capture covered every table."""
    row = target.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (_ORIGIN,)).fetchone()
    snapshot = None
    if row and row[0]:
        found = target.execute(f"SELECT snapshot FROM {_ORIGIN}").fetchone()
        snapshot = str(found[0]) if found else None
    if snapshot is None:
        raise PreconditionError(
            "the target was not copied by ferry from a source carrying change capture (capture was installed "
            "after the copy began?): changes made in between are in no log; copy again, then follow",
            side="target",
        )
    late = [
        str(r[0])
        for r in source.execute(
            sql.SQL(
                "SELECT name FROM {}.captured WHERE NOT pg_catalog.txid_visible_in_snapshot(xid, %s::txid_snapshot) "
                "ORDER BY name"
            ).format(sql.Identifier(schema)),
            (snapshot,),
        )
    ]
    if late:
        raise PreconditionError(
            f"change capture on {late[0]} went in after the target's copy began ({len(late)} tables): changes made "
            "in between are in no log; copy again, then follow",
            side="source",
        )
