"""The writes that hand unique values and keys between rows (within a transaction and across
transactions, other writers' entries falling in between): what capture's apply must take apart."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from bench.chaos.schema import PLANS
from bench.chaos.writer_base import Skip, WriterBase


class HandoffWrites(WriterBase):
    """Key updates, deletes and re-inserts of one key, and unique values handed between rows."""

    def org_key_update(self) -> None:
        """A uuid primary key changes: users, memberships (its key too) and invoices follow by cascade."""
        with self.txn() as cur:
            cur.execute("UPDATE orgs SET id = gen_random_uuid() WHERE id = %s", (self.some_org(cur),))

    def delete_reinsert_user(self) -> None:
        """The same key deleted and inserted again, in one transaction or in two."""
        same = self.rng.random() < 0.5
        with self.txn() as cur:
            row = self.one(
                cur,
                "DELETE FROM users WHERE id = (SELECT id FROM users WHERE id >= (SELECT min(id) + floor(random() * "
                "(max(id) - min(id) + 1))::bigint FROM users) ORDER BY id LIMIT 1) "
                "RETURNING id, org_id, email, handle, deleted, profile",
            )
            if same:
                self.reinsert_user(cur, row)
        if not same:
            self.pause()
            with self.txn() as cur:
                self.reinsert_user(cur, row)

    @staticmethod
    def reinsert_user(cur: psycopg.Cursor[Any], row: tuple[Any, ...]) -> None:
        cur.execute(
            "INSERT INTO users (id, org_id, email, handle, deleted, profile) OVERRIDING SYSTEM VALUE "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (row[0], row[1], row[2], row[3], row[4], Jsonb({**row[5], "reborn": True})),
        )
        cur.execute("INSERT INTO memberships VALUES (%s, %s, 'member') ON CONFLICT DO NOTHING", (row[1], row[0]))

    def delete_reinsert_session(self) -> None:
        with self.txn() as cur:
            tok = self.one(cur, 'SELECT "Token", user_id FROM "Sessions" ORDER BY random() LIMIT 1')
            cur.execute('DELETE FROM "Sessions" WHERE "Token" = %s', (tok[0],))
            cur.execute(
                "INSERT INTO \"Sessions\" VALUES (%s, %s, %s, now() + interval '2 days')",
                (tok[0], tok[1], Jsonb({"again": True})),
            )

    def swap_emails(self) -> None:
        """Two users trade e-mail addresses (in another letter case) inside one transaction."""
        with self.txn() as cur:
            a = self.some_user(cur)
            b = self.some_user(cur)
            if a[0] == b[0]:
                raise Skip
            cur.execute("UPDATE users SET email = %s WHERE id = %s", (self.token("swap") + "@tmp", a[0]))
            cur.execute("UPDATE users SET email = %s WHERE id = %s", (self.flip_case(a[1]), b[0]))
            cur.execute("UPDATE users SET email = %s WHERE id = %s", (self.flip_case(b[1]), a[0]))

    def rotate_emails(self) -> None:
        """A's address handed to B, B's to C, C's to D, each in its own transaction."""
        with self.txn() as cur:
            chain = [self.some_user(cur) for _ in range(self.rng.randint(2, 4))]
        if len({u[0] for u in chain}) != len(chain):
            raise Skip
        released = None
        for i, user in enumerate(chain):
            with self.txn() as cur:
                email = self.flip_case(released) if released else self.token("rot") + "@Fresh.example"
                cur.execute("UPDATE users SET email = %s WHERE id = %s", (email, user[0]))
            released = user[1]
            if i < len(chain) - 1:
                self.pause()

    def handoff_handle(self) -> None:
        """The partial unique index: A soft-deleted frees its handle; B takes it in a later transaction;
        sometimes A comes back under a new handle."""
        with self.txn() as cur:
            a = self.some_user(cur, "AND NOT deleted")
            cur.execute("UPDATE users SET deleted = true WHERE id = %s", (a[0],))
        self.pause()
        with self.txn() as cur:
            b = self.some_user(cur, "AND NOT deleted")
            cur.execute("UPDATE users SET handle = %s WHERE id = %s", (a[2], b[0]))
        if self.rng.random() < 0.5:
            self.pause()
            with self.txn() as cur:
                cur.execute("UPDATE users SET deleted = false, handle = %s WHERE id = %s", (self.token("back"), a[0]))

    def rotate_seats(self) -> None:
        """NULLS NOT DISTINCT: one seat per room may be NULL; the NULL slot is handed over across transactions."""
        with self.txn() as cur:
            room = self.one(cur, "SELECT room FROM seats ORDER BY random() LIMIT 1")[0]
            holder = cur.execute("SELECT id FROM seats WHERE room = %s AND seat IS NULL", (room,)).fetchone()
            taker = self.one(
                cur, "SELECT id, seat FROM seats WHERE room = %s AND seat IS NOT NULL ORDER BY random() LIMIT 1",
                (room,),
            )  # fmt: skip
            spare = self.one(cur, "SELECT coalesce(max(seat), 0) + 1 + %s FROM seats WHERE room = %s",
                             (self.rng.randrange(5), room))[0]  # fmt: skip
            if holder is not None:
                cur.execute(
                    "UPDATE seats SET seat = %s, holder = %s WHERE id = %s", (spare, self.token("h"), holder[0])
                )
        self.pause()
        with self.txn() as cur:
            cur.execute("UPDATE seats SET seat = NULL, holder = NULL WHERE id = %s", (taker[0],))
        self.pause()
        with self.txn() as cur:  # someone takes the seat number the taker gave up
            cur.execute(
                "UPDATE seats SET seat = %s WHERE id = (SELECT id FROM seats WHERE room = %s AND seat > %s "
                "ORDER BY random() LIMIT 1)",
                (taker[1], room, taker[1]),
            )

    def swap_seats(self) -> None:
        with self.txn() as cur:
            a, b = cur.execute(
                "SELECT id, seat FROM seats WHERE room = (SELECT room FROM seats ORDER BY random() LIMIT 1) "
                "ORDER BY random() LIMIT 2"
            ).fetchall()
            cur.execute("UPDATE seats SET seat = -1 - %s WHERE id = %s", (self.rng.randrange(10**6), a[0]))
            cur.execute("UPDATE seats SET seat = %s WHERE id = %s", (a[1], b[0]))
            cur.execute("UPDATE seats SET seat = %s WHERE id = %s", (b[1], a[0]))

    def move_booking(self) -> None:
        """The exclusion constraint: a booking leaves its slot; another moves into it, in the next transaction."""
        with self.txn() as cur:
            a = self.one(cur, "SELECT id, room_id, during FROM bookings ORDER BY random() LIMIT 1")
            cur.execute(
                "UPDATE bookings SET during = tstzrange(lower(during) + interval '1000 hours' * %s, "
                "upper(during) + interval '1000 hours' * %s) WHERE id = %s",
                (shift := 1 + self.rng.randrange(50), shift, a[0]),
            )
        self.pause()
        with self.txn() as cur:
            b = self.one(cur, "SELECT id FROM bookings WHERE room_id = %s AND id <> %s ORDER BY random() LIMIT 1",
                         (a[1], a[0]))  # fmt: skip
            # Overlapping the slot A left, by half an hour on each side of its start.
            cur.execute(
                "UPDATE bookings SET during = tstzrange(lower(%s::tstzrange) - interval '30 minutes', "
                "lower(%s::tstzrange) + interval '30 minutes') WHERE id = %s",
                (a[2], a[2], b[0]),
            )

    def move_shift(self) -> None:
        """An exclusion constraint on tstzrange(starts, ends): a shift leaves its hours, another takes them."""
        with self.txn() as cur:
            a = self.one(cur, "SELECT id, worker, starts, ends FROM shifts ORDER BY random() LIMIT 1")
            shift = 1000 + self.rng.randrange(5000)
            cur.execute(
                "UPDATE shifts SET starts = starts + %s * interval '1 hour', ends = ends + %s * interval '1 hour' "
                "WHERE id = %s",
                (shift, shift, a[0]),
            )
        self.pause()
        with self.txn() as cur:
            b = self.one(cur, "SELECT id FROM shifts WHERE worker = %s AND id <> %s ORDER BY random() LIMIT 1",
                         (a[1], a[0]))  # fmt: skip
            cur.execute("UPDATE shifts SET starts = %s, ends = %s WHERE id = %s", (a[2], a[3], b[0]))

    def rate_periods(self) -> None:
        """Rows keyed by (plan, daterange), written with DateStyle 'SQL, DMY' (an app server's locale)."""
        with self.txn() as cur:
            if cur.execute("SELECT to_regclass('rate_periods') IS NULL").fetchone() == (True,):
                raise Skip
            cur.execute("SET LOCAL DateStyle = 'SQL, DMY'")
            cur.execute("SET LOCAL TimeZone = 'Asia/Kolkata'")
            pick = "(SELECT plan, period FROM rate_periods ORDER BY random() LIMIT 1)"
            choice = self.rng.random()
            if choice < 0.35:
                start = self.rng.randrange(0, 900)
                cur.execute(
                    "INSERT INTO rate_periods VALUES (%s, daterange(date '2024-01-01' + %s::int, "
                    "date '2024-01-01' + %s::int), %s) ON CONFLICT DO NOTHING",
                    (self.rng.choice(PLANS), start, start + self.rng.randint(1, 60), self.rng.randint(1, 999)),
                )
            elif choice < 0.6:
                cur.execute(f"UPDATE rate_periods SET price = price + 1 WHERE (plan, period) = {pick}")
            elif choice < 0.85:  # the key moves: the old and the new range are both logged
                cur.execute(
                    "UPDATE rate_periods SET period = daterange(lower(period) + 1, upper(period) + 1) "
                    f"WHERE (plan, period) = {pick}"
                )
            else:
                cur.execute(f"DELETE FROM rate_periods WHERE (plan, period) = {pick}")

    def rotate_slugs(self) -> None:
        """A case-insensitive unique slug handed from org A to org B (in other letters' case), across transactions."""
        with self.txn() as cur:
            a, b = cur.execute("SELECT id, slug FROM orgs ORDER BY random() LIMIT 2").fetchall()
            cur.execute("UPDATE orgs SET slug = %s WHERE id = %s", (self.token("slug-"), a[0]))
        self.pause()
        with self.txn() as cur:
            cur.execute("UPDATE orgs SET slug = %s WHERE id = %s", (self.flip_case(a[1]), b[0]))

    def move_partition(self) -> None:
        """A row moves to another partition (its key changes: the date is part of it)."""
        with self.txn() as cur:
            days = self.rng.choice([-200, -91, 91, 120, 400])
            cur.execute(
                "UPDATE events SET happened_on = happened_on + %s::int, kind = 'moved' WHERE (id, happened_on) IN ("
                "SELECT id, happened_on FROM events WHERE id >= (SELECT floor(random() * last_value)::bigint FROM event_ids) "
                "ORDER BY id LIMIT %s)",
                (days, self.rng.randint(1, 3)),
            )

    def swap_refs(self) -> None:
        """Unique (ref, happened_on) values traded between two rows of one partition."""
        with self.txn() as cur:
            rows = cur.execute(
                "SELECT id, happened_on, ref FROM events_2024q2 WHERE ref IS NOT NULL ORDER BY random() LIMIT 2"
            ).fetchall()
            if not rows:
                raise Skip
            if len(rows) < 2 or rows[0][1] != rows[1][1]:  # not on one day: a fresh value instead
                cur.execute(
                    "UPDATE events SET ref = %s WHERE id = %s AND happened_on = %s",
                    (self.token("ref"), rows[0][0], rows[0][1]),
                )
                return
            (a, day, ra), (b, _, rb) = rows
            cur.execute("UPDATE events SET ref = 'tmp-' || %s WHERE id = %s AND happened_on = %s", (self.index, a, day))
            cur.execute("UPDATE events SET ref = %s WHERE id = %s AND happened_on = %s", (ra, b, day))
            cur.execute("UPDATE events SET ref = %s WHERE id = %s AND happened_on = %s", (rb, a, day))

    def swap_invoice_numbers(self) -> None:
        """Unique numbers traded across two transactions: A's number goes to B after A takes a new one."""
        with self.txn() as cur:
            a, b = cur.execute("SELECT id, number FROM invoices ORDER BY random() LIMIT 2").fetchall()
            cur.execute("UPDATE invoices SET number = nextval('invoice_numbers') WHERE id = %s", (a[0],))
        self.pause()
        with self.txn() as cur:
            cur.execute("UPDATE invoices SET number = %s WHERE id = %s", (a[1], b[0]))

    def rotate_api_key(self) -> None:
        """A key that is a unique index (no primary key) changes; sometimes deleted and inserted again."""
        with self.txn() as cur:
            row = self.one(cur, "SELECT token, user_id FROM api_keys ORDER BY random() LIMIT 1")
            if self.rng.random() < 0.6:
                cur.execute("UPDATE api_keys SET token = gen_random_uuid() WHERE token = %s", (row[0],))
            else:
                cur.execute("DELETE FROM api_keys WHERE token = %s", (row[0],))
                cur.execute("INSERT INTO api_keys VALUES (%s, %s, 'again')", (row[0], row[1]))
