"""The follow back: after the switch, the new database's writes followed into the old one until ``finish``.

The same capture, fence and follow as the forward move, the sides swapped. Capture goes on the new
database while the app still writes to the old one (the forward follower's writes are logged there
too, and are of no use): :func:`begin_follow_back`, inside the freeze once the verify has found both
sides equal, empties that log and says where the follow back begins (the snapshot a follow's target
records of its copy: here the new database as it is, equal to the old one). Nothing is written to the
old database inside the freeze (its witness is proved again until the switch); after the switch
:func:`open_follow_back` fences it, with a passage for the follower alone (:mod:`.passage`), and
records that origin there. :func:`end_follow_back` takes it all off both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from migration.errors import PreconditionError
from migration.postgres.capture.apply import prepare_target
from migration.postgres.capture.constraints import forget_follow, restore_constraints, validate_constraints
from migration.postgres.capture.install import CaptureSettings, remove_capture, set_functions_fenced
from migration.postgres.capture.inventory import require_complete, require_current_layout, schema_state
from migration.postgres.catalog import Conn
from migration.postgres.footprint import CAPTURE_FENCE, CAPTURE_LOG, FOLLOW_CHANGED, in_capture
from migration.postgres.matviews import matview_identities
from migration.postgres.origin import record_copy_origin, source_shape

__all__ = ["BackOrigin", "begin_follow_back", "end_follow_back", "fence_with_passage", "open_follow_back"]


@dataclass(frozen=True)
class BackOrigin:
    """Where the follow back begins: the new database's snapshot as the freeze left both sides equal, its
    materialized views and its tables' shape then (what a follow's target records of its copy)."""

    snapshot: str
    views: dict[str, tuple[int, bool]]
    shape: dict[int, tuple[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "views": {name: list(view) for name, view in self.views.items()},
            "shape": {str(oid): list(entry) for oid, entry in self.shape.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BackOrigin:
        return cls(
            str(data["snapshot"]),
            {str(name): (int(v[0]), bool(v[1])) for name, v in data["views"].items()},
            {int(oid): (str(e[0]), str(e[1])) for oid, e in data["shape"].items()},
        )


def fence_with_passage(old: Conn, digest: str | None, settings: CaptureSettings | None = None) -> None:
    """The database fenced for every session but those holding the passage hashed to *digest* (``None``:
    none pass) (*old*: autocommit). Safe to repeat."""
    schema = (settings or CaptureSettings()).schema
    if schema_state(old, schema) != "ours":
        raise PreconditionError(
            "change capture is gone from the old database: it cannot stay fenced while followed back", side="source"
        )
    with old.transaction():
        old.execute(sql.SQL("INSERT INTO {} DEFAULT VALUES ON CONFLICT (id) DO NOTHING").format(
            in_capture(schema, CAPTURE_FENCE)
        ))  # fmt: skip
        set_functions_fenced(old, schema, True, passage=digest)


def begin_follow_back(new: Conn, settings: CaptureSettings | None = None) -> BackOrigin:
    """Inside the freeze, both sides verified equal: the new database's log emptied (what it holds is the
    forward follow's own writes, on the old side already) and where the follow back begins (*new*: autocommit).

    :raises PreconditionError: capture on the new database does not cover every table."""
    schema = (settings or CaptureSettings()).schema
    require_current_layout(new, schema)
    require_complete(new, schema, "following the new database back")
    with new.transaction():
        new.execute(sql.SQL("DELETE FROM {}").format(in_capture(schema, CAPTURE_LOG)))
        row = new.execute("SELECT pg_catalog.txid_current_snapshot()::text").fetchone()
        assert row is not None
        return BackOrigin(str(row[0]), matview_identities(new), source_shape(new))


def open_follow_back(old: Conn, origin: BackOrigin, digest: str, settings: CaptureSettings | None = None) -> int:
    """After the switch: the old database fenced for all but the passage hashed to *digest*, and made the
    follow's target as of *origin* (*old*: autocommit). Returns the position in its record of rewritten keys
    from which the follow back's are recorded (what the verify of a rollback compares)."""
    fence_with_passage(old, digest, settings)
    with old.transaction():
        record_copy_origin(old, origin.snapshot, origin.views, origin.shape)
        prepare_target(old)
        row = old.execute(f"SELECT coalesce(max(id), 0) FROM {FOLLOW_CHANGED}").fetchone()
    return int(row[0]) if row else 0


def end_follow_back(new_url: str, old: Conn, settings: CaptureSettings | None = None) -> int:
    """The move is final: capture off the new database, the old one's foreign keys and triggers as they
    were (where the follow took them off) and the follow's record gone. The old database's own capture
    (its fence) is the caller's to take off. Returns how many foreign keys were put back."""
    settings = settings or CaptureSettings()
    remove_capture(new_url, settings)
    restored = restore_constraints(old)
    validate_constraints(old)
    forget_follow(old)
    return restored
