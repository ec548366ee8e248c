"""A copy shared between tasks: what the leader records for its helpers, and the claims on its parts.

The leader (``copy_database`` with ``CopyOptions.shared``) records in the target's ``_ferry`` schema
what a helper (:func:`~migration.postgres.copy.helper.help_copy`) needs to join: the snapshot its
workers read (:data:`STATE_SHARE`: the exported snapshot stays importable while the leader's
exporting transaction is open, that is while the leader runs), and one row per part of its plan
(:data:`STATE_CLAIM`: the part, its table's columns and size, binary or text, its place in the plan's
order, biggest critical path first).

Every copier, the leader's own workers as much as a helper's, takes its next part with
``SELECT … FOR UPDATE SKIP LOCKED`` inside the very transaction that loads the part's rows and
inserts its done marker (:func:`claim_next`). So:

- a part being copied is skipped by every other session (its claim row is locked until that commit);
- a part whose copier died (``kill -9``: the server rolls its transaction back, the lock goes with
  it) is claimable again, by anyone;
- a part is loaded and marked exactly once: its marker's primary key, and the marker read again once
  the claim row is locked (a part finished by another session the moment before holds no lock but
  is done).

The claims live in ``_ferry`` with the rest of the resume state, and are dropped with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from migration.errors import ResumeError
from migration.postgres.catalog import Conn, TableInfo
from migration.postgres.copy.plan import Part
from migration.postgres.copy.snapshot import SourceSnapshot
from migration.postgres.footprint import STATE_CLAIM, STATE_PART, STATE_RUN, STATE_SHARE, STATE_SHARE_HELPER

__all__ = [
    "SharedCopy",
    "SharedPart",
    "claim_next",
    "done_markers",
    "join_share",
    "joined_helpers",
    "read_share",
    "record_copier",
    "share_copy",
    "shared_parts",
    "unshare_copy",
]

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {STATE_SHARE} (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    snapshot jsonb NOT NULL,
    owner text,
    leader text NOT NULL,
    shared_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {STATE_SHARE_HELPER} (
    name text PRIMARY KEY,
    joined_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {STATE_CLAIM} (
    part_key text PRIMARY KEY,
    ord int NOT NULL,
    part jsonb NOT NULL,
    columns text[] NOT NULL,
    table_bytes bigint NOT NULL,
    est_rows bigint NOT NULL,
    in_binary boolean NOT NULL,
    copied_by text,
    copied_at timestamptz
);
"""

# Skipped rows are not counted by LIMIT (LockRows runs below it): the first part nobody holds.
_CLAIM = f"""
SELECT c.part_key FROM {STATE_CLAIM} c
 WHERE NOT EXISTS (SELECT FROM {STATE_PART} p WHERE p.part_key = c.part_key)
   AND c.part_key <> ALL(%s)
 ORDER BY c.ord
   FOR UPDATE OF c SKIP LOCKED
 LIMIT 1
"""


@dataclass(frozen=True)
class SharedPart:
    """One part of a shared copy, with what a helper needs to copy it as the leader would.

    :param columns: the table's copied columns, quoted (generated columns left out).
    :param table_bytes: the table's size and :param est_rows: its estimated rows (progress estimates).
    :param binary: copied in ``COPY``'s binary format (the leader decided: same majors, binary-safe types).
    """

    part: Part
    columns: list[str]
    table_bytes: int
    est_rows: int
    binary: bool

    def table(self) -> TableInfo:
        """The part's table as the data phase's :func:`~migration.postgres.copy.data.copy_part` reads it."""
        schema, _, name = self.part.table.partition(".")
        return TableInfo(0, self.part.table, schema, name, self.columns, self.table_bytes, 0, self.est_rows, None,
                         binary_safe=self.binary)  # fmt: skip


@dataclass(frozen=True)
class SharedCopy:
    """What a helper reads to join a shared copy.

    :param source: the source's display form, as the leader recorded it (a helper checks its own).
    :param leader: the leader's ``application_name`` on the target.
    """

    source: str
    snapshot: SourceSnapshot
    owner: str | None
    leader: str
    parts: dict[str, SharedPart]


def shared_parts(parts: list[Part], tables: list[TableInfo], binary: bool) -> list[SharedPart]:
    """*parts* as a helper copies them.

    :param binary: the servers' majors are equal (a binary-safe table then travels in binary).
    """
    by_name = {t.qualified_name: t for t in tables}
    shared = []
    for part in parts:
        table = by_name.get(part.table)
        if table is None:
            continue  # gone from the source: the data phase refuses the copy
        shared.append(SharedPart(part, table.columns, table.bytes, table.est_rows, binary and table.binary_safe))
    return shared


def share_copy(conn: Conn, snapshot: SourceSnapshot, owner: str | None, leader: str, parts: list[SharedPart]) -> None:
    """Record (again, on a resume: with this run's snapshot) what helpers need, in the caller's transaction.

    :param conn: the leader's control session on the target, inside the transaction that commits the plan
        (a first run) or right after the resume's restart (its markers as they will stay).
    :param parts: the whole plan, in claim order; the parts done already are never claimed.
    """
    conn.execute(_CREATE)
    conn.execute(f"DELETE FROM {STATE_SHARE}")
    conn.execute(
        f"INSERT INTO {STATE_SHARE} (snapshot, owner, leader) VALUES (%s, %s, %s)",
        (json.dumps(snapshot.as_dict()), owner, leader),
    )
    conn.execute(f"DELETE FROM {STATE_CLAIM}")
    conn.execute(f"DELETE FROM {STATE_SHARE_HELPER}")  # a resume's helpers join anew
    with conn.cursor().copy(
        f"COPY {STATE_CLAIM} (part_key, ord, part, columns, table_bytes, est_rows, in_binary) FROM STDIN"
    ) as copy:
        for ord_, shared in enumerate(parts):
            p = shared.part
            copy.write_row((p.key, ord_, json.dumps(p.to_json()), shared.columns, shared.table_bytes,
                            shared.est_rows, shared.binary))  # fmt: skip


def unshare_copy(conn: Conn) -> None:
    """A copy resumed unshared: helpers of an earlier, shared run find nothing to join (nor claim)."""
    conn.execute(f"DROP TABLE IF EXISTS {STATE_SHARE}, {STATE_CLAIM}, {STATE_SHARE_HELPER}")


def join_share(conn: Conn, name: str) -> None:
    """A helper says it has joined (its snapshot imported): the leader waits for the helpers it expects."""
    conn.execute(f"INSERT INTO {STATE_SHARE_HELPER} (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,))


def joined_helpers(conn: Conn) -> int:
    """How many helpers have joined the shared copy so far."""
    row = conn.execute(f"SELECT count(*) FROM {STATE_SHARE_HELPER}").fetchone()
    return int(row[0]) if row else 0


def read_share(conn: Conn) -> SharedCopy | None:
    """The shared copy recorded on this target, or ``None`` (no copy, or one not shared)."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (STATE_SHARE,)).fetchone()
    if not row or not row[0]:
        return None
    try:
        # One transaction: the share and its claims as one leader wrote them (a resume rewrites both).
        with conn.transaction():
            share = conn.execute(f"SELECT r.source, s.snapshot, s.owner, s.leader FROM {STATE_SHARE} s, {STATE_RUN} r"
                                 ).fetchone()  # fmt: skip
            claims = conn.execute(
                f"SELECT part, columns, table_bytes, est_rows, in_binary FROM {STATE_CLAIM} ORDER BY ord"
            ).fetchall()
    except psycopg.errors.UndefinedTable:
        return None  # dropped since: the copy finished, or was resumed unshared
    if share is None:
        return None
    parts: dict[str, SharedPart] = {}
    for part, columns, table_bytes, est_rows, binary in claims:
        shared = SharedPart(Part.from_json(dict(part)), list(columns), int(table_bytes), int(est_rows), bool(binary))
        parts[shared.part.key] = shared
    return SharedCopy(str(share[0]), _snapshot(dict(share[1])), share[2], str(share[3]), parts)


def _snapshot(data: dict[str, Any]) -> SourceSnapshot:
    return SourceSnapshot(
        str(data["snapshot_id"]), str(data["txid_snapshot"]), data.get("wal_lsn"),
        datetime.fromisoformat(str(data["taken_at"])),
    )  # fmt: skip


def claim_next(conn: Conn, snapshot_id: str) -> str | None:
    """Lock the next part nobody copies or copied, in the caller's (read committed) transaction.

    Returns its key, or ``None`` when every part left is done or held by another session (or the
    shared copy is over: its record dropped). The lock, and with it the claim, lasts until the
    caller's transaction ends: commit it with the part's rows and marker.

    :param snapshot_id: the snapshot the caller reads the source in.
    :raises ResumeError: the copy was started again since (a resume, from another snapshot): rows read
        in the old one would mix with the new run's.
    """
    try:
        with conn.transaction():  # a savepoint: a record dropped meanwhile leaves the transaction usable
            # Locked for share: the record cannot be rewritten (nor dropped) until this part commits.
            row = conn.execute(f"SELECT snapshot->>'snapshot_id' FROM {STATE_SHARE} FOR SHARE").fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    if row is None:
        return None
    if row[0] != snapshot_id:
        raise ResumeError(
            "the shared copy into this database was started again from another snapshot: a helper joins it anew",
            side="target",
        )
    passed: list[str] = []
    while True:
        found = conn.execute(_CLAIM, (passed,)).fetchone()
        if found is None:
            return None
        key = str(found[0])
        # Unlocked, so whoever held it has ended: a new statement sees whether that was a commit.
        done = conn.execute(f"SELECT EXISTS (SELECT FROM {STATE_PART} WHERE part_key = %s)", (key,)).fetchone()
        if not (done and done[0]):
            return key
        passed.append(key)


def record_copier(conn: Conn, key: str, copier: str) -> None:
    """Note who copied *key* (in the transaction that marks it done: it is true once it commits)."""
    conn.execute(f"UPDATE {STATE_CLAIM} SET copied_by = %s, copied_at = now() WHERE part_key = %s", (copier, key))


def done_markers(conn: Conn, keys: list[str]) -> list[tuple[str, int, int, float, str | None]]:
    """``(key, rows, bytes, seconds, copied by)`` of those of *keys* marked done."""
    rows = conn.execute(
        f"SELECT p.part_key, p.rows, p.bytes, p.seconds, c.copied_by FROM {STATE_PART} p "
        f"LEFT JOIN {STATE_CLAIM} c USING (part_key) WHERE p.part_key = ANY(%s)",
        (keys,),
    ).fetchall()
    return [(str(r[0]), int(r[1]), int(r[2]), float(r[3]), None if r[4] is None else str(r[4])) for r in rows]
