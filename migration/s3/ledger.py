"""What ferry copied into a bucket: each key and the source ETag it was copied from.

The sync after the switch needs it to tell the app's own writes to the new bucket from ferry's copies:
an object there that is still ferry's unchanged copy may be replaced or deleted as the old bucket
changed; any other is the app's, never touched. One SQLite file per bucket pair (millions of keys in
a few hundred MB, durable across a ``kill -9``).

A copy is written down *before* it is made (:meth:`Ledger.intend`) and confirmed once it landed
(:meth:`Ledger.record`): a worker killed in between leaves an intention, so an object that did land is
still known as ferry's (its ETag is the intended one), and one that did not is known as never copied.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

__all__ = ["Ledger"]


class Ledger:
    """:param path: the ledger's file (created when missing)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS copied (key TEXT PRIMARY KEY, source_etag TEXT, intended_etag TEXT)"
        )

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def intend(self, key: str, source_etag: str) -> None:
        """ferry is about to copy the source object with *source_etag* to *key*."""
        with self._lock:
            self._db.execute(
                "INSERT INTO copied (key, intended_etag) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET intended_etag = excluded.intended_etag",
                (key, source_etag),
            )

    def record(self, key: str, source_etag: str) -> None:
        """*key* now holds ferry's copy of the source object with *source_etag*."""
        with self._lock:
            self._db.execute(
                "INSERT INTO copied (key, source_etag) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET source_etag = excluded.source_etag, intended_etag = NULL",
                (key, source_etag),
            )

    def forget(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM copied WHERE key = ?", (key,))

    def copied(self, key: str) -> str | None:
        """The source ETag ferry last copied *key* from and saw land (``None``: none did)."""
        return self.ferrys(key)[0]

    def ferrys(self, key: str) -> tuple[str | None, str | None]:
        """(the source ETag of ferry's last copy that landed, the one of a copy begun and never confirmed)."""
        with self._lock:
            row = self._db.execute("SELECT source_etag, intended_etag FROM copied WHERE key = ?", (key,)).fetchone()
        return (None, None) if row is None else (row[0], row[1])

    def adopt(self, other: Ledger) -> int:
        """Every copy *other* saw land, taken as ferry's here too: the ledger of the sync back (new → old)
        starts from the forward one's, whose sources are the old bucket's objects. Returns how many."""
        with other._lock:
            rows = other._db.execute("SELECT key, source_etag FROM copied WHERE source_etag IS NOT NULL").fetchall()
        with self._lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO copied (key, source_etag) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET source_etag = excluded.source_etag",
                rows,
            )
            self._db.execute("COMMIT")
        return len(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
