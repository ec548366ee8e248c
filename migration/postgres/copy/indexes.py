"""Per-table finishing: indexes, the constraints they back, then ANALYZE.

Runs as soon as a table's last part is loaded. A primary key or unique constraint is
built as a unique index first and then attached with ``ADD CONSTRAINT … USING INDEX``,
so the expensive part runs in parallel with other builds. Every step checks the
target's catalog first, so a resumed copy skips what already exists.
"""

from __future__ import annotations

import time

from migration.crashpoints import crashpoint
from migration.postgres.catalog import Conn, IndexBuild, TableInfo
from migration.postgres.connection import pg_errors
from migration.postgres.conninfo import PgEndpoint

__all__ = ["analyze_table", "build_index", "constraint_exists", "index_exists"]


def index_exists(conn: Conn, qualified_name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (qualified_name,)).fetchone()
    return bool(row and row[0])


def constraint_exists(conn: Conn, table: str, name: str) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s)",
        (table, name),
    ).fetchone()
    return bool(row and row[0])


def build_index(conn: Conn, target: PgEndpoint, table: TableInfo, index: IndexBuild) -> float:
    """Build *index* (and its constraint) on the target unless it exists; return seconds."""
    started = time.monotonic()
    with pg_errors("target", target):
        if index.index_sql and not index_exists(conn, index.qualified_name):
            conn.execute(index.index_sql)
            crashpoint("index-built")
        if (
            index.constraint_sql
            and index.constraint_name
            and not constraint_exists(conn, table.qualified_name, index.constraint_name)
        ):
            conn.execute(index.constraint_sql)
            crashpoint("constraint-added")
        for statement in index.after_sql:
            conn.execute(statement)
    return time.monotonic() - started


def analyze_table(conn: Conn, target: PgEndpoint, table: TableInfo) -> None:
    with pg_errors("target", target):
        conn.execute(f"ANALYZE {table.qualified_name}")
    crashpoint("analyzed")
