"""A resumed copy reads the parts left from a new snapshot: what that means, and what it changes.

The first snapshot died with the killed copy's session, so the parts a resume copies come from
another point in time than the parts done before. Two things follow.

Within one group of parts (the ctid or key ranges of a split table, the batches of large
objects) a row or object that changed in between may sit in a done part as it was and in a part
left as it is now (a duplicate key when the table's unique index is built), or in neither (lost).
So on resume a group with some parts done and some not is started over from the new snapshot:
the done parts' rows (or large objects) go together with their markers, in one target
transaction, so a crash leaves either the old parts and markers or neither. A group whose parts
were all done stays as its snapshot left it.

Across tables, a foreign key may then not hold: a parent deleted between the snapshots (its
children with it, by ``ON DELETE CASCADE``) is absent from a parent table copied after the
resume while its children arrived before. On a resumed copy such a foreign key is added
``NOT VALID`` (it holds for every new write and reads no row) with a warning; the follow brings
the changes since, or a copy inside the write freeze does. A copy never interrupted is not
touched by any of this.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from migration.crashpoints import crashpoint
from migration.errors import FerryError, ResumeError, SourceChangedError, UsageError
from migration.postgres.catalog import Conn
from migration.postgres.copy.large_object_copy import LO_BATCH
from migration.postgres.copy.plan import Part
from migration.postgres.copy.restore import EntrySQL
from migration.postgres.copy.state import CopyState
from migration.postgres.footprint import STATE_PART

__all__ = [
    "Restart",
    "not_valid_foreign_keys",
    "relaxed_foreign_key",
    "restart_partial_groups",
    "resume_can_succeed",
    "validated_foreign_keys",
]

_LO_PREFIX = "large-objects#"
# SQLSTATE classes of failures a resume meets again, the same rows running the same statements:
# data exceptions, integrity violations, syntax and access rules, features not supported.
_REPEATS = ("22", "23", "42", "0A")


@dataclass
class Restart:
    """What a resume keeps, and what it copies again whole from its own snapshot.

    :param done: the part markers still standing (the parts not to copy again).
    :param tables: split tables started over (some of their ranges were done, some not).
    :param large_objects_kept: every batch of large objects was done before the resume: how many
        objects they hold (the resume leaves them as they are); ``None`` when they are copied now.
    :param large_objects_again: some batches were done, not all: every large object is copied again.
    """

    done: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    large_objects_kept: int | None = None
    large_objects_again: bool = False


def restart_partial_groups(conn: Conn, parts: list[Part], state: CopyState) -> Restart:
    """Start over, in one target transaction, every group of parts that is partly done.

    :param conn: the copy's control session on the target.
    :param parts: the copy's plan.
    :param state: what the interrupted copy recorded.
    """
    restart = Restart(done=dict(state.done_parts))
    by_table: dict[str, list[Part]] = {}
    for part in parts:
        if part.count > 1:
            by_table.setdefault(part.table, []).append(part)
    stale: list[str] = []
    for table, ranges in sorted(by_table.items()):
        done = [p.key for p in ranges if p.key in state.done_parts]
        if done and len(done) < len(ranges):
            restart.tables.append(table)
            stale += done
    lo_done = [key for key in state.done_parts if key.startswith(_LO_PREFIX)]
    planned = state.plan.get("large_objects")
    if lo_done and isinstance(planned, int) and len(lo_done) == -(-planned // LO_BATCH):
        restart.large_objects_kept = planned
    elif lo_done:
        # Some batches done (or a plan that does not say how many there were): all of them again.
        restart.large_objects_again = True
        stale += lo_done
    if not stale:
        return restart
    with conn.transaction():
        for table in restart.tables:
            conn.execute(f"TRUNCATE ONLY {table}")
        if restart.large_objects_again:
            conn.execute("SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata")
        conn.execute(f"DELETE FROM {STATE_PART} WHERE part_key = ANY(%s)", (stale,))
        crashpoint("parts-restarting")
    for key in stale:
        restart.done.pop(key, None)
    return restart


def relaxed_foreign_key(item: EntrySQL, error: psycopg.Error) -> str | None:
    """The ``NOT VALID`` form of a foreign key whose rows do not hold, or ``None`` for any other failure.

    pg_dump writes one ``ALTER TABLE … ADD CONSTRAINT … FOREIGN KEY …;`` per entry (comments may
    follow it: the archive's last entry carries the dump's closing lines). ``NOT VALID`` goes at the
    statement's end, where the grammar takes it after ``ON DELETE …`` and ``DEFERRABLE …``.
    """
    if item.entry.desc != "FK CONSTRAINT" or not isinstance(error, psycopg.errors.ForeignKeyViolation):
        return None
    lines = item.sql.splitlines()
    last = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip() and not lines[i].startswith("--")), None)
    if last is None or not lines[last].rstrip().endswith(";"):
        return None
    lines[last] = lines[last].rstrip()[:-1] + " NOT VALID;"
    return "\n".join(lines) + "\n"


_NOT_VALIDATED = """
SELECT format('%I.%I', n.nspname, c.relname), o.conname
  FROM pg_catalog.pg_constraint o JOIN pg_catalog.pg_class c ON c.oid = o.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE o.contype = 'f' AND NOT o.convalidated
"""
_VALIDATED = """
SELECT format('%%I.%%I', n.nspname, c.relname), o.conname
  FROM pg_catalog.pg_constraint o JOIN pg_catalog.pg_class c ON c.oid = o.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE o.contype = 'f' AND o.convalidated AND o.oid = ANY(%s)
"""


def validated_foreign_keys(conn: Conn, constraint_oids: list[int]) -> set[tuple[str, str]]:
    """``(table, name)`` of the foreign keys among *constraint_oids* the source holds validated.

    :param conn: a session in the copy's snapshot.
    """
    return {(str(r[0]), str(r[1])) for r in conn.execute(_VALIDATED, (constraint_oids,)).fetchall()}


def not_valid_foreign_keys(conn: Conn, validated: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The foreign keys among *validated* (valid on the source) the target holds ``NOT VALID``.

    Read from the catalog, so a resume after a crash still names those an earlier run added.

    :param conn: the copy's control session on the target.
    """
    relaxed = {(str(r[0]), str(r[1])) for r in conn.execute(_NOT_VALIDATED).fetchall()}
    return sorted(validated & relaxed)


def resume_can_succeed(exc: FerryError) -> bool:
    """Whether ``--resume`` could get past this failure (given resume state on the target).

    A connection lost, a session ended, a server restarted, a lock or a deadlock, the disk full:
    a resume can finish. The same rows meeting the same statement again cannot (a check the
    target's rows fail, a value the target refuses, a table gone from the source), except a
    foreign key violation, which a resume adds ``NOT VALID``.
    """
    if isinstance(exc, (SourceChangedError, UsageError, ResumeError)):
        return False
    cause = exc.__cause__
    sqlstate = getattr(getattr(cause, "diag", None), "sqlstate", None) if cause is not None else None
    if not sqlstate or sqlstate == "23503":
        return True
    return not sqlstate.startswith(_REPEATS)
