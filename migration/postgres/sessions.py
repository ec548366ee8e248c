"""Ending other sessions of a database, and waiting until they are really gone."""

from __future__ import annotations

import time
from typing import Any

from migration.errors import FerryError
from migration.postgres.catalog import Conn

__all__ = ["end_sessions"]


def end_sessions(conn: Conn, query: str, params: Any, *, wait_seconds: float, error: FerryError) -> int:
    """``pg_terminate_backend`` every pid *query* lists, then wait until it lists none.

    Returns how many sessions were ended. :raises error: some are still there after *wait_seconds*
    (the role may not signal them).
    """
    pids = [int(r[0]) for r in conn.execute(query, params)]
    if not pids:
        return 0
    conn.execute("SELECT pg_catalog.pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
    deadline = time.monotonic() + wait_seconds
    while conn.execute(query, params).fetchone() is not None:
        if time.monotonic() > deadline:
            raise error
        time.sleep(0.05)
    return len(pids)
