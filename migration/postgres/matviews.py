"""Materialized views: refreshed once every table and index is in place."""

from __future__ import annotations

import psycopg

from migration.postgres.catalog import Conn
from migration.postgres.connection import pg_errors
from migration.postgres.conninfo import PgEndpoint

__all__ = ["refresh_matviews"]


def refresh_matviews(control: Conn, names: list[str], target: PgEndpoint) -> None:
    """Refresh in rounds: a view over another view waits for the round after it."""
    left = list(names)
    with pg_errors("target", target):
        _refresh_rounds(control, left)


def _refresh_rounds(control: Conn, left: list[str]) -> None:
    while left:
        failed: list[str] = []
        error: psycopg.Error | None = None
        for name in left:
            try:
                control.execute(f"REFRESH MATERIALIZED VIEW {name}")
            except psycopg.errors.ObjectNotInPrerequisiteState as exc:
                failed.append(name)
                error = exc
        if error is not None and len(failed) == len(left):
            raise error
        left = failed
