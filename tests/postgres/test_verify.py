"""ferry pg verify finds and locates differences, and only differences."""

from __future__ import annotations

from tests.conftest import Database
from tests.helpers import ferry

SOURCE = """
CREATE TABLE accounts (id int PRIMARY KEY, balance int, note text);
INSERT INTO accounts SELECT g, g % 1000, 'n' || g FROM generate_series(1, 600000) g;
CREATE TABLE tags (name text);
INSERT INTO tags VALUES ('a'), ('b'), ('b');
CREATE INDEX tags_name_idx ON tags (name);
CREATE SEQUENCE counter;
SELECT setval('counter', 500);
SELECT lo_from_bytea(0, 'hello');
"""


def _copied(source_db: Database, target_db: Database) -> None:
    source_db.execute(SOURCE)
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url)
    assert run.code == 0, run.stderr


def test_identical_databases_exit_0(source_db: Database, target_db: Database) -> None:
    _copied(source_db, target_db)
    run = ferry("pg", "verify", "--source", source_db.url, "--target", target_db.url, "--json")
    assert run.code == 0, run.output
    report = run.json
    assert report["identical"] is True and report["checked"]["tables"] == 2
    assert report["checked"]["rows"] == 600003 and report["checked"]["ranges"] >= 4
    quick = ferry("pg", "verify", "--source", source_db.url, "--target", target_db.url, "--mode", "quick")
    assert quick.code == 0 and "identical" in quick.stdout


def test_differences_are_found_and_located(source_db: Database, target_db: Database) -> None:
    _copied(source_db, target_db)
    target_db.execute(
        "UPDATE accounts SET balance = balance + 1 WHERE id = 590000;"  # same count, other content
        "DELETE FROM tags WHERE ctid = (SELECT min(ctid) FROM tags WHERE name = 'b');"
        "DROP INDEX tags_name_idx;"
        "SELECT setval('counter', 10);"
        "SELECT lo_put(oid, 0, 'J') FROM pg_largeobject_metadata;"
    )
    run = ferry("pg", "verify", "--source", source_db.url, "--target", target_db.url, "--json")
    assert run.code == 1, run.output
    found = {(d["kind"], d["name"]) for d in run.json["differences"]}
    checksum = [name for kind, name in found if kind == "checksum"]
    assert len(checksum) == 1 and checksum[0].startswith("public.accounts id in [")
    low, high = checksum[0].split("[")[1].rstrip(")").split(", ")
    assert int(low) <= 590000 < (int(high) if high != "+inf" else 10**9)
    assert ("row count", "public.tags") in found
    assert ("index", "public.tags_name_idx") in found
    assert ("sequence", "public.counter") in found
    assert any(kind == "large object" for kind, _ in found)
    table = ferry("pg", "verify", "--source", source_db.url, "--target", target_db.url)
    assert table.code == 1 and "DIFFERENT" in table.stdout and "public.tags_name_idx" in table.stdout


def test_target_ahead_on_sequences_is_fine(source_db: Database, target_db: Database) -> None:
    _copied(source_db, target_db)
    target_db.execute("SELECT setval('counter', 900)")
    run = ferry("pg", "verify", "--source", source_db.url, "--target", target_db.url, "--mode", "quick")
    assert run.code == 0, run.output


def test_verify_errors_name_the_side(source_db: Database) -> None:
    run = ferry("pg", "verify", "--source", source_db.url, "--target", "postgres://u:pw@127.0.0.1:1/x")
    assert run.code == 2 and run.stderr.startswith("ferry: error: target: cannot connect")
