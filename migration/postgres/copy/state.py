"""Resume state, kept in the target database itself in the ``_ferry`` schema (:mod:`~migration.postgres.footprint`).

A part's done marker is inserted in the same transaction as its rows, so after a crash
or ``kill -9`` a part is either fully loaded and marked, or absent and copied again.
The schema is dropped when the copy finishes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from migration.postgres.catalog import Conn
from migration.postgres.footprint import STATE_ENTRY, STATE_PART, STATE_RUN, STATE_SCHEMA, STATE_STEP

__all__ = [
    "CopyState",
    "create_state",
    "drop_state",
    "load_state",
    "mark_entry",
    "mark_step",
    "state_exists",
]

_CREATE = f"""
CREATE SCHEMA {STATE_SCHEMA};
CREATE TABLE {STATE_RUN} (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    source text NOT NULL,
    snapshot jsonb NOT NULL,
    plan jsonb NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {STATE_PART} (
    part_key text PRIMARY KEY,
    rows bigint NOT NULL,
    bytes bigint NOT NULL,
    seconds double precision NOT NULL,
    done_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {STATE_STEP} (
    name text PRIMARY KEY,
    done_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {STATE_ENTRY} (
    entry_key text PRIMARY KEY,
    done_at timestamptz NOT NULL DEFAULT now()
);
"""


@dataclass
class CopyState:
    """What an earlier, unfinished copy into this target recorded."""

    source: str
    snapshot: dict[str, Any]
    plan: dict[str, Any]
    done_parts: dict[str, tuple[int, int, float]]
    done_steps: set[str]
    done_entries: set[str]


def state_exists(conn: Conn) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (STATE_RUN,)).fetchone()
    return bool(row and row[0])


def create_state(conn: Conn, source: str, snapshot: dict[str, Any], plan: dict[str, Any]) -> None:
    """Record a new copy's plan (in the caller's transaction, if it has one)."""
    with conn.transaction():
        conn.execute(_CREATE)
        conn.execute(
            f"INSERT INTO {STATE_RUN} (source, snapshot, plan) VALUES (%s, %s, %s)",
            (source, json.dumps(snapshot), json.dumps(plan)),
        )


def load_state(conn: Conn) -> CopyState | None:
    if not state_exists(conn):
        return None
    row = conn.execute(f"SELECT source, snapshot, plan FROM {STATE_RUN}").fetchone()
    if row is None:
        return None
    parts = {
        str(r[0]): (int(r[1]), int(r[2]), float(r[3]))
        for r in conn.execute(f"SELECT part_key, rows, bytes, seconds FROM {STATE_PART}")
    }
    steps = {str(r[0]) for r in conn.execute(f"SELECT name FROM {STATE_STEP}")}
    entries = {str(r[0]) for r in conn.execute(f"SELECT entry_key FROM {STATE_ENTRY}")}
    return CopyState(str(row[0]), dict(row[1]), dict(row[2]), parts, steps, entries)


def mark_step(conn: Conn, name: str) -> None:
    conn.execute(f"INSERT INTO {STATE_STEP} (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,))


def mark_entry(conn: Conn, key: str) -> None:
    """Mark one post-data entry applied (inside the transaction that applied it)."""
    conn.execute(f"INSERT INTO {STATE_ENTRY} (entry_key) VALUES (%s)", (key,))


def part_marker_sql() -> str:
    return f"INSERT INTO {STATE_PART} (part_key, rows, bytes, seconds) VALUES (%s, %s, %s, %s)"


def drop_state(conn: Conn) -> None:
    conn.execute(f"DROP SCHEMA IF EXISTS {STATE_SCHEMA} CASCADE")
