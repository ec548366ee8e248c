"""The rest of an app's writes: inserts, updates and cascading deletes, bulk transactions, TRUNCATE,
long transactions, savepoints, MERGE and upserts, COPY FROM, large objects, setval."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench.chaos.writer_base import WriterBase


class _RolledBack(Exception):
    pass


class AppWrites(WriterBase):
    """Everyday writes, each in one acknowledged transaction."""

    def insert_user(self) -> None:
        with self.txn() as cur:
            org = self.some_org(cur)
            t = self.token("u")
            uid = self.one(
                cur,
                "INSERT INTO users (org_id, email, handle, profile) VALUES (%s, %s, %s, %s) RETURNING id",
                (org, f"{t}@Mail{self.rng.randrange(9)}.example", t, Jsonb({"src": "live", "w": self.index})),
            )[0]
            cur.execute("INSERT INTO memberships VALUES (%s, %s, %s)", (org, uid, self.rng.choice(["member", "admin"])))
            if self.rng.random() < 0.5:
                cur.execute(
                    "INSERT INTO \"Sessions\" VALUES (%s, %s, %s, now() + interval '1 day')",
                    (self.token("tok"), uid, Jsonb({"ua": "x" * self.rng.randrange(50)})),
                )

    def update_profile(self) -> None:
        with self.txn() as cur:
            uid = self.some_user(cur)[0]
            cur.execute(
                "UPDATE users SET profile = jsonb_set(profile, '{visits}', to_jsonb(coalesce((profile->>'visits')::int, 0) + 1)) "
                "WHERE id = %s",
                (uid,),
            )

    def delete_org(self) -> None:
        """Cascades to users, memberships, sessions, api keys; events' user_id set NULL; then a new org."""
        with self.txn() as cur:
            org = self.some_org(cur)
            slug = self.one(cur, "DELETE FROM orgs WHERE id = %s RETURNING slug", (org,))[0]
            if self.rng.random() < 0.5:  # the same key and slug again, in the same transaction
                cur.execute("INSERT INTO orgs (id, slug) VALUES (%s, %s)", (org, slug))
            else:
                org = self.one(cur, "INSERT INTO orgs (slug) VALUES (%s) RETURNING id", (self.token("org-"),))[0]
            t = self.token("n")
            cur.execute(
                "INSERT INTO users (org_id, email, handle) SELECT %s, %s || g || '@Reborn.example', %s || g "
                "FROM generate_series(1, 20) g",
                (org, t, t),
            )

    def delete_user(self) -> None:
        with self.txn() as cur:
            cur.execute("DELETE FROM users WHERE id = %s", (self.some_user(cur)[0],))

    def insert_events(self) -> None:
        with self.txn() as cur:
            uid = self.some_user(cur)[0]
            for _ in range(self.rng.randint(1, 5)):
                cur.execute(
                    "INSERT INTO events (happened_on, user_id, kind, payload, ref) VALUES (%s, %s, 'live', %s, %s)",
                    (f"2024-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}", uid,
                     Jsonb({"r": self.rng.random()}), self.token("ref") if self.rng.random() < 0.3 else None),
                )  # fmt: skip

    def bulk_events(self) -> None:
        """A 10 000-row transaction: its entries span several batches."""
        with self.txn() as cur:
            cur.execute(
                "INSERT INTO events (happened_on, kind, payload) SELECT date '2024-01-01' + (g %% 500), 'bulk', "
                "jsonb_build_object('w', %s, 'g', g) FROM generate_series(1, 10000) g",
                (self.index,),
            )

    def bulk_update(self) -> None:
        with self.txn() as cur:
            cur.execute(
                "UPDATE events SET payload = coalesce(payload, '{}') || jsonb_build_object('bulk', %s) "
                "WHERE (id, happened_on) IN (SELECT id, happened_on FROM events ORDER BY id DESC LIMIT 10000)",
                (self.n,),
            )

    def truncate_sessions(self) -> None:
        with self.txn() as cur:
            cur.execute('TRUNCATE "Sessions"')
            cur.execute(
                'INSERT INTO "Sessions" SELECT %s || id, id, NULL, now() FROM users ORDER BY random() LIMIT 200',
                (self.token("t"),),
            )

    def truncate_partition(self) -> None:
        with self.txn() as cur:
            cur.execute("TRUNCATE events_other")

    def long_transaction(self) -> None:
        """Open for seconds while the others write (and the follow applies batches)."""
        with self.txn() as cur:
            uid = self.some_user(cur)[0]
            cur.execute("UPDATE users SET profile = profile || '{\"long\": 1}' WHERE id = %s", (uid,))
            cur.execute("INSERT INTO events (happened_on, kind) VALUES ('2024-05-05', 'long')")
            self.stop.wait(self.rng.uniform(0.5, 4))
            cur.execute("INSERT INTO counters (name, value) VALUES (%s, 1)", (self.token("long"),))

    def savepoints(self) -> None:
        """Work rolled back to savepoints (one after a constraint error), the rest committed."""
        assert self.conn is not None
        with self.txn() as cur:
            uid = self.some_user(cur)[0]
            cur.execute('UPDATE users SET profile = profile || \'{"sp": "kept"}\' WHERE id = %s', (uid,))
            with contextlib.suppress(_RolledBack), self.conn.transaction():
                cur.execute("DELETE FROM users WHERE id = %s", (uid,))
                cur.execute(
                    "INSERT INTO events (happened_on, kind) SELECT '2024-02-02', 'gone' FROM generate_series(1, 50)"
                )
                raise _RolledBack
            with contextlib.suppress(psycopg.errors.UniqueViolation), self.conn.transaction():
                other = self.some_user(cur)
                cur.execute("UPDATE users SET email = upper(%s) WHERE id = %s", (other[1], uid))  # taken: refused
            cur.execute("INSERT INTO events (happened_on, user_id, kind) VALUES ('2024-08-08', %s, 'sp')", (uid,))

    def merge(self) -> None:
        with self.txn() as cur:
            names = sorted({f"c{self.rng.randint(1, 260)}" for _ in range(self.rng.randint(1, 6))})
            values = [(n, self.rng.randint(-30, 30)) for n in names]
            if self.version >= 150000:
                cur.execute(
                    "MERGE INTO counters c USING (SELECT * FROM unnest(%s::text[], %s::int[])) AS v(name, delta) "
                    "ON c.name = v.name "
                    "WHEN MATCHED AND c.value + v.delta <= 0 THEN DELETE "
                    "WHEN MATCHED THEN UPDATE SET value = c.value + v.delta "
                    "WHEN NOT MATCHED AND v.delta > 0 THEN INSERT (name, value) VALUES (v.name, v.delta)",
                    ([n for n, _ in values], [d for _, d in values]),
                )
            else:
                self.upsert_in(cur, values)

    def upsert(self) -> None:
        with self.txn() as cur:
            self.upsert_in(cur, [(f"c{self.rng.randint(1, 260)}", self.rng.randint(1, 9))])

    @staticmethod
    def upsert_in(cur: psycopg.Cursor[Any], values: list[tuple[str, int]]) -> None:
        for name, delta in values:
            cur.execute(
                "INSERT INTO counters (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
                (name, abs(delta) + 1),
            )

    def copy_in(self) -> None:
        """COPY FROM into a table without a key and into the partitioned table."""
        with self.txn() as cur:
            with cur.copy("COPY page_views (path, viewed_at, n) FROM STDIN") as copy:
                for i in range(self.rng.randint(10, 200)):
                    copy.write_row((f"/live/{i % 17}", "2024-06-01 12:00:00+00", i))
            with cur.copy("COPY events (happened_on, kind, payload) FROM STDIN") as copy:
                for i in range(self.rng.randint(10, 300)):
                    copy.write_row((f"2024-{1 + i % 12:02d}-15", "copied", json.dumps({"i": i})))

    def invoices(self) -> None:
        with self.txn() as cur:
            if self.rng.random() < 0.6:
                cur.execute(
                    "INSERT INTO invoices (org_id, amount, lines) VALUES (%s, %s, %s)",
                    (self.some_org(cur), self.rng.randint(1, 99999) / 100, Jsonb([self.rng.random()])),
                )
            else:
                cur.execute(
                    "UPDATE invoices SET amount = amount + 1 WHERE id = (SELECT id FROM invoices ORDER BY random() LIMIT 1)"
                )

    def large_object(self) -> None:
        """No trigger sees large objects: the freeze compares and copies them."""
        with self.txn() as cur:
            choice = self.rng.random()
            if choice < 0.4:
                oid = self.one(cur, "SELECT lo_from_bytea(0, %s)", (os.urandom(self.rng.randint(10, 5000)),))[0]
                cur.execute(
                    "INSERT INTO documents VALUES ((SELECT coalesce(max(id), 0) + 1 FROM documents), %s, %s)",
                    (self.token("doc"), oid),
                )
            elif choice < 0.8:
                oid = self.one(cur, "SELECT blob FROM documents ORDER BY random() LIMIT 1 FOR UPDATE")[0]
                cur.execute("SELECT lo_put(%s, %s, %s)", (oid, self.rng.randint(0, 100), b"changed!"))
            else:
                doc = self.one(cur, "DELETE FROM documents WHERE id = (SELECT id FROM documents ORDER BY random() "
                                    "LIMIT 1 FOR UPDATE) RETURNING blob")  # fmt: skip
                cur.execute("SELECT lo_unlink(%s)", (doc[0],))

    def sequence_jump(self) -> None:
        with self.txn() as cur:
            cur.execute(
                "SELECT setval('invoice_numbers', nextval('invoice_numbers') + %s)", (self.rng.randint(1, 500),)
            )

    def cascade_session_user(self) -> None:
        """A user deleted in the same transaction its new session was written."""
        with self.txn() as cur:
            uid = self.some_user(cur)[0]
            cur.execute('INSERT INTO "Sessions" VALUES (%s, %s, NULL, now())', (self.token("doomed"), uid))
            cur.execute("INSERT INTO api_keys VALUES (gen_random_uuid(), %s, 'doomed')", (uid,))
            cur.execute("DELETE FROM users WHERE id = %s", (uid,))
