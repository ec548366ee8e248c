"""The capture-bypass scenarios: the source's schema they start from, and each attack's steps."""

from __future__ import annotations

from dataclasses import dataclass

from bench.chaos.attack_hooks import (
    Hook,
    close_kept,
    commit_prepared,
    disable_capture_trigger,
    drop_other_credential,
    every_write_under_the_fence,
    other_credential_open,
    prepare,
    rollback_prepared,
    sequence_under_fence,
    superuser_commit,
    superuser_open,
    two_followers,
)

BASE = """
CREATE TYPE mood AS ENUM ('ok', 'meh');
CREATE SEQUENCE counter_seq;
CREATE TABLE items (id int PRIMARY KEY, note text, mood mood NOT NULL DEFAULT 'ok',
                    n int NOT NULL DEFAULT nextval('counter_seq'));
CREATE TABLE items2 (id int PRIMARY KEY, note text, n int NOT NULL DEFAULT 0);
CREATE TABLE twin (id int PRIMARY KEY, note text, n int NOT NULL DEFAULT 0);
CREATE TABLE nokey (v text);
CREATE FUNCTION double_it(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 2';
CREATE TABLE gen (id int PRIMARY KEY, v int NOT NULL, g int GENERATED ALWAYS AS (double_it(v)) STORED);
CREATE TABLE events (id int, day date, PRIMARY KEY (id, day)) PARTITION BY RANGE (day);
CREATE TABLE events_old PARTITION OF events FOR VALUES FROM ('2000-01-01') TO ('2024-01-01');
CREATE TABLE events_new PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2030-01-01');
INSERT INTO items (id, note, mood) SELECT g, 'n' || g, CASE WHEN g % 3 = 0 THEN 'meh' ELSE 'ok' END::mood
  FROM generate_series(1, 100) g;
INSERT INTO items2 SELECT g, 'i' || g, g FROM generate_series(1, 50) g;
INSERT INTO twin SELECT g, 't' || g, -g FROM generate_series(1, 50) g;
INSERT INTO nokey SELECT 'k' || g FROM generate_series(1, 10) g;
INSERT INTO gen (id, v) SELECT g, g FROM generate_series(1, 20) g;
INSERT INTO events SELECT g, date '2020-01-01' + g * 30 FROM generate_series(1, 100) g;
CREATE MATERIALIZED VIEW item_moods AS SELECT mood, count(*) AS n FROM items GROUP BY mood;
"""


@dataclass
class Attack:
    name: str
    who: str
    what: str
    during: Hook | None = None  # while following
    fenced: Hook | None = None  # the fence up, before the drain
    after_drain: Hook | None = None  # drained and synced, before the compare
    cleanup: Hook | None = None
    min_version: int = 0
    matview: bool = False  # a materialized view's content is the point


ATTACKS = [
    Attack(
        "replica-role",
        "superuser",
        "SET session_replication_role = replica, then writes",
        during=lambda c: c.run(
            c.superuser,
            "SET session_replication_role = replica",
            "UPDATE items SET note = 'replica' WHERE id <= 10",
            "DELETE FROM items WHERE id = 12",
            "INSERT INTO items (id) VALUES (1000)",
            "TRUNCATE twin",
        ),
    ),
    Attack(
        "disable-capture-trigger",
        "app role (owns its tables)",
        "ALTER TABLE items DISABLE TRIGGER <capture's>; writes; ENABLE TRIGGER, in one transaction",
        during=disable_capture_trigger,
    ),
    Attack(
        "disable-trigger-user",
        "app role (owns its tables)",
        "ALTER TABLE items DISABLE TRIGGER USER; writes; ENABLE TRIGGER USER (what pg_restore --disable-triggers does)",
        during=lambda c: c.run(
            c.app,
            "ALTER TABLE items DISABLE TRIGGER USER",
            "UPDATE items SET note = 'user triggers off' WHERE id BETWEEN 20 AND 29",
            "ALTER TABLE items ENABLE TRIGGER USER",
        ),
    ),
    Attack(
        "table-rebuild",
        "app role",
        "one transaction: CREATE TABLE items2_new (LIKE items2 INCLUDING ALL), fill it, DROP items2, "
        "RENAME items2_new TO items2; then writes to it",
        during=lambda c: c.run(
            c.app,
            "BEGIN",
            "CREATE TABLE items2_new (LIKE items2 INCLUDING ALL)",
            "INSERT INTO items2_new SELECT id, upper(note), n FROM items2 WHERE id > 5",
            "DROP TABLE items2",
            "ALTER TABLE items2_new RENAME TO items2",
            "COMMIT",
            "UPDATE items2 SET note = 'after the rebuild' WHERE id = 30",
            "INSERT INTO items2 VALUES (500, 'new', 1)",
        ),
    ),
    Attack(
        "rename-swap",
        "app role",
        "two tables of the same columns swap names in one transaction; then writes to both",
        during=lambda c: c.run(
            c.app,
            "BEGIN",
            "ALTER TABLE items2 RENAME TO swap_tmp",
            "ALTER TABLE twin RENAME TO items2",
            "ALTER TABLE swap_tmp RENAME TO twin",
            "COMMIT",
            "UPDATE items2 SET note = 'written after the swap' WHERE id <= 3",
            "UPDATE twin SET note = 'written after the swap' WHERE id <= 3",
        ),
    ),
    Attack(
        "alter-type-using",
        "app role",
        "ALTER TABLE items2 ALTER COLUMN note TYPE text USING upper(note) (same type: every row rewritten)",
        during=lambda c: c.run(c.app, "ALTER TABLE items2 ALTER COLUMN note TYPE text USING upper(note)"),
    ),
    Attack(
        "drop-add-column",
        "app role",
        "DROP COLUMN n, ADD COLUMN n int NOT NULL DEFAULT 7 in one transaction (same name, type, place)",
        during=lambda c: c.run(
            c.app,
            "BEGIN",
            "ALTER TABLE items2 DROP COLUMN n",
            "ALTER TABLE items2 ADD COLUMN n int NOT NULL DEFAULT 7",
            "COMMIT",
        ),
    ),
    Attack(
        "enum-rename-value",
        "app role (owns the type)",
        "ALTER TYPE mood RENAME VALUE 'meh' TO 'blah' (every row holding it reads differently)",
        during=lambda c: c.run(c.app, "ALTER TYPE mood RENAME VALUE 'meh' TO 'blah'"),
    ),
    Attack(
        "generated-function-replaced",
        "app role",
        "CREATE OR REPLACE the IMMUTABLE function a generated column uses, then update rows",
        during=lambda c: c.run(
            c.app,
            "CREATE OR REPLACE FUNCTION double_it(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1 * 3'",
            "UPDATE gen SET v = v + 1 WHERE id <= 5",
        ),
    ),
    Attack(
        "generated-set-expression",
        "app role",
        "ALTER TABLE gen ALTER COLUMN g SET EXPRESSION AS (v * 10) (PostgreSQL 17+: every row rewritten)",
        during=lambda c: c.run(c.app, "ALTER TABLE gen ALTER COLUMN g SET EXPRESSION AS (v * 10)"),
        min_version=170000,
    ),
    Attack(
        "detach-partition",
        "app role (pg_partman's retention does this)",
        "ALTER TABLE events DETACH PARTITION events_old (kept as a table)",
        during=lambda c: c.run(c.app, "ALTER TABLE events DETACH PARTITION events_old"),
    ),
    Attack(
        "new-partition",
        "app role (pg_partman's premake does this)",
        "CREATE TABLE events_future PARTITION OF events ...; rows written to it",
        during=lambda c: c.run(
            c.app,
            "CREATE TABLE events_future PARTITION OF events FOR VALUES FROM ('2030-01-01') TO ('2040-01-01')",
            "INSERT INTO events VALUES (1, '2035-01-01')",
        ),
    ),
    Attack(
        "matview-refresh",
        "app role",
        "REFRESH MATERIALIZED VIEW item_moods after writes (no trigger sees a materialized view)",
        during=lambda c: c.run(
            c.app, "UPDATE items SET mood = 'meh' WHERE id <= 30", "REFRESH MATERIALIZED VIEW item_moods"
        ),
        matview=True,
    ),
    Attack(
        "alter-sequence",
        "app role",
        "ALTER SEQUENCE counter_seq INCREMENT BY 10 RESTART WITH 100000",
        during=lambda c: c.run(c.app, "ALTER SEQUENCE counter_seq INCREMENT BY 10 RESTART WITH 100000"),
    ),
    Attack(
        "sequence-under-fence",
        "app role",
        "nextval() and refused INSERTs after sync_sequences: the fence stops no sequence",
        after_drain=sequence_under_fence,
    ),
    Attack(
        "large-object-after-sync",
        "app role",
        "lo_from_bytea() after the final sync (the fence stops no large object write)",
        after_drain=lambda c: c.run(c.app, "SELECT lo_from_bytea(0, 'written under the fence')"),
    ),
    Attack(
        "prepared-transaction",
        "app role (max_prepared_transactions > 0)",
        "PREPARE TRANSACTION before the fence, COMMIT PREPARED after the drain",
        during=prepare,
        after_drain=commit_prepared,
        cleanup=rollback_prepared,
    ),
    Attack(
        "superuser-open-across-fence",
        "superuser",
        "a superuser's write open across the fence (ferry's role cannot end it)",
        during=superuser_open,
        after_drain=superuser_commit,
        cleanup=close_kept,
    ),
    Attack(
        "other-credential-open-across-fence",
        "another login role the app granted writes (Heroku credentials)",
        "its write open across the fence; committed after the drain",
        during=other_credential_open,
        after_drain=superuser_commit,
        cleanup=drop_other_credential,
    ),
    Attack(
        "owner-disables-fence",
        "app role (owns its tables)",
        "under the fence: ALTER TABLE items DISABLE TRIGGER USER, write, enable again",
        fenced=lambda c: c.run(
            c.app,
            "ALTER TABLE items DISABLE TRIGGER USER",
            "UPDATE items SET note = 'through the fence' WHERE id = 40",
            "ALTER TABLE items ENABLE TRIGGER USER",
        ),
    ),
    Attack(
        "every-write-under-the-fence",
        "app role",
        "UPDATE, INSERT, DELETE, TRUNCATE (keyed and keyless), partitioned, ON CONFLICT, MERGE, COPY under the fence",
        after_drain=every_write_under_the_fence,
    ),
    Attack(
        "two-followers",
        "operator",
        "a second ferry pg follow while the first runs; updates to the same keys",
        during=two_followers,
    ),
    Attack(
        "new-table",
        "app role",
        "CREATE TABLE + rows while following (control: the follow must stop)",
        during=lambda c: c.run(c.app, "CREATE TABLE newt (id int PRIMARY KEY)", "INSERT INTO newt VALUES (1)"),
    ),
]
