"""The steps of a cutover with capture that are more than one call, as library calls (the runbook,
``ferry pg copy --follow`` and the chaos harness use them alike).

Inside the freeze, after the follower's last batch: :func:`drain_frozen` applies the log to the
fence's marker (or, with the app stopped, empties it), then copies what no trigger sees —
sequences, tables without a key, large objects — refreshes the materialized views the source
refreshed, and puts back the target's foreign keys the follow had taken off (``NOT VALID``,
validated after the unfreeze).
"""

from __future__ import annotations

from dataclasses import dataclass

from migration.postgres.capture.apply import apply_batch, copy_keyless_tables, sync_sequences
from migration.postgres.capture.constraints import await_validation, restore_constraints
from migration.postgres.capture.fence import drain_to_marker
from migration.postgres.capture.install import CaptureSettings
from migration.postgres.capture.large_object_sync import sync_large_objects
from migration.postgres.catalog import Conn
from migration.postgres.matviews import sync_matviews

__all__ = ["FrozenDrain", "await_copied_constraints", "drain_frozen"]


@dataclass(frozen=True)
class FrozenDrain:
    """What :func:`drain_frozen` did: log entries applied, sequences set, keyless tables copied,
    large objects copied again, materialized views refreshed, foreign keys put back."""

    applied: int
    sequences: int
    keyless: int
    large_objects: int
    refreshed: list[str]
    restored: int

    def summary(self) -> str:
        """``N changes drained, …`` as one phrase."""
        said = f"{self.applied} changes drained, {self.sequences} sequences, {self.keyless} tables without a key copied"
        said += f", {self.restored} foreign keys back NOT VALID" if self.restored else ""
        said += f", {self.large_objects} large objects copied again" if self.large_objects else ""
        said += f", materialized views refreshed: {', '.join(self.refreshed)}" if self.refreshed else ""
        return said


def drain_frozen(src: Conn, dst: Conn, marker: int | None, settings: CaptureSettings | None = None) -> FrozenDrain:
    """Inside the freeze (*src*, *dst*: autocommit): the log to *marker* (``None``: the app is stopped,
    the whole log), then what no trigger sees, then the target's foreign keys."""
    schema = (settings or CaptureSettings()).schema
    if marker is not None:
        applied = drain_to_marker(src, dst, marker, settings)
    else:
        applied = 0
        while (batch := apply_batch(src, dst, schema).entries) > 0:
            applied += batch
    sequences = sync_sequences(src, dst)
    keyless = copy_keyless_tables(src, dst, schema)
    large_objects = sync_large_objects(src, dst)
    refreshed = sync_matviews(src, dst)  # after the tables: a view's query reads them
    return FrozenDrain(applied, sequences, keyless, large_objects, refreshed, restore_constraints(dst))


def await_copied_constraints(dst: Conn, not_valid_foreign_keys: list[tuple[str, str]]) -> None:
    """A resumed copy's foreign keys left ``NOT VALID``: recorded, validated once the changes are followed."""
    if not_valid_foreign_keys:
        await_validation(dst, not_valid_foreign_keys)
