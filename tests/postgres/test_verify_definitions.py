"""DDL that keeps every column's name and type, and still changes what the app gets.

Row checksums cannot see these (an enum label renamed reads differently but every row is
the same; a function a default calls, replaced, changes only rows written later), so verify
compares the definitions themselves, and the follow copies again a table whose storage was
rewritten under it.
"""

from __future__ import annotations

import pytest

from migration.postgres import verify_databases
from tests.conftest import Database
from tests.helpers import ferry

SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'meh', 'happy');
CREATE DOMAIN score AS int CHECK (VALUE >= 0);
CREATE FUNCTION double_it(int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT $1 * 2 $$;
CREATE SEQUENCE counter_seq;
CREATE TABLE items (id int PRIMARY KEY, note text, m mood, s score,
                    twice int GENERATED ALWAYS AS (double_it(id)) STORED);
INSERT INTO items (id, note, m, s) SELECT g, 'n' || g, 'meh', g FROM generate_series(1, 20) g;
"""


@pytest.mark.parametrize(
    ("ddl", "kind"),
    [
        ("ALTER TYPE mood RENAME VALUE 'meh' TO 'blah'", "type"),
        ("ALTER DOMAIN score ADD CONSTRAINT small CHECK (VALUE < 1000)", "type"),
        ("CREATE OR REPLACE FUNCTION double_it(int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT $1 * 3 $$",
         "function"),
        ("ALTER SEQUENCE counter_seq INCREMENT BY 10", "sequence definition"),
    ],
)  # fmt: skip
def test_definitions_changed_on_the_source_are_differences(
    ddl: str, kind: str, source_db: Database, target_db: Database
) -> None:
    source_db.execute(SCHEMA)
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url).code == 0
    assert verify_databases(source_db.url, target_db.url, mode="full").identical
    source_db.execute(ddl)
    report = verify_databases(source_db.url, target_db.url, mode="quick")
    assert kind in {d.kind for d in report.differences}, [str(d) for d in report.differences]


def test_a_table_rewritten_under_the_follow_is_copied_again(source_db: Database, target_db: Database) -> None:
    """ALTER COLUMN … TYPE (the same type) USING changes every row, and no row trigger fires."""
    source_db.execute(SCHEMA)
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "2")
    assert copied.code == 0, copied.output
    try:
        source_db.execute("ALTER TABLE items ALTER COLUMN note TYPE text USING upper(note)")
        followed = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "2")
        assert followed.code == 0, followed.output
        assert target_db.scalar("SELECT note FROM items WHERE id = 3") == "N3"
        report = verify_databases(source_db.url, target_db.url, mode="full")
        assert report.identical, [str(d) for d in report.differences]
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)
