"""What every writer has: its connection, its random choices, its transactions acknowledged in the ledger."""

from __future__ import annotations

import contextlib
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg


class Skip(Exception):
    """The op found nothing to work on: nothing written."""


@dataclass
class WriterStats:
    acked: list[int] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    ambiguous: int = 0  # the commit's outcome is unknown (connection lost)
    unexpected: list[str] = field(default_factory=list)


class WriterBase(threading.Thread):
    """One app process's plumbing; the writes themselves are in :mod:`bench.chaos.handoffs` and
    :mod:`bench.chaos.writes`, the mix and the loop in :class:`bench.chaos.writers.Writer`."""

    def __init__(self, index: int, url: str, seed: int, stop: threading.Event, version: int) -> None:
        super().__init__(name=f"writer-{index}", daemon=True)
        self.index = index
        self.url = url
        self.rng = random.Random(f"{seed}-writer-{index}")
        self.stop = stop
        self.version = version
        self.stats = WriterStats()
        self.n = 0
        self.fresh = 0
        self.conn: psycopg.Connection[Any] | None = None
        self.op = ""

    @contextlib.contextmanager
    def txn(self) -> Iterator[psycopg.Cursor[Any]]:
        """One transaction; committed, it is acknowledged (its ledger row is part of it)."""
        assert self.conn is not None
        self.n += 1
        n = self.n
        with self.conn.transaction():
            cur = self.conn.cursor()
            yield cur
            cur.execute("INSERT INTO ledger (writer, n, op) VALUES (%s, %s, %s)", (self.index, n, self.op))
        self.stats.acked.append(n)
        self.stats.ops[self.op] += 1

    def token(self, what: str) -> str:
        self.fresh += 1
        return f"{what}{self.index}x{self.fresh}x{self.rng.randrange(10**6)}"

    def pause(self, most: float = 0.3) -> None:
        """Between the transactions of a hand-off: other writers' entries fall in between."""
        self.stop.wait(self.rng.uniform(0, most))

    @staticmethod
    def one(cur: psycopg.Cursor[Any], query: str, params: Any = None) -> tuple[Any, ...]:
        row = cur.execute(query, params).fetchone()
        if row is None:
            raise Skip
        return tuple(row)

    def some_user(self, cur: psycopg.Cursor[Any], extra: str = "") -> tuple[Any, ...]:
        # A random user without scanning: the first id at or after a random point.
        return self.one(
            cur,
            f"SELECT id, email, handle, org_id FROM users WHERE id >= (SELECT min(id) + "
            f"floor(random() * (max(id) - min(id) + 1))::bigint FROM users) {extra} ORDER BY id LIMIT 1",
        )

    def some_org(self, cur: psycopg.Cursor[Any]) -> Any:
        return self.one(cur, "SELECT id FROM orgs ORDER BY random() LIMIT 1")[0]

    def flip_case(self, email: str) -> str:
        return "".join(c.upper() if self.rng.random() < 0.5 else c.lower() for c in email)
