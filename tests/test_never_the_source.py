"""A target that is the source, under any spelling, is refused before anything is written.

Whatever destructive flag comes with it (``--clean``, ``--flush-target``, ``--delete``),
and however the URLs spell host, port, socket or user, the source keeps every row, key
and object.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.conftest import Database
from tests.helpers import assert_one_line_error, ferry


def _spellings(db: Database) -> dict[str, str]:
    cluster = db.cluster
    auth = f"{cluster.superuser}:{cluster.password}"
    socket_dir = quote(str(cluster.datadir.parent), safe="")
    return {
        "localhost": f"postgres://{auth}@localhost:{cluster.port}/{db.name}",
        "socket": f"postgresql://{auth}@/{db.name}?host={socket_dir}&port={cluster.port}",
        "keywords": f"host=127.0.0.1 port={cluster.port} dbname={db.name} user={cluster.superuser} "
        f"password={cluster.password}",
        "other user": f"postgresql://other_user:other-pw@127.0.0.1:{cluster.port}/{db.name}",
    }


@pytest.mark.parametrize("spelling", ["localhost", "socket", "keywords", "other user"])
def test_pg_copy_clean_into_the_source_is_refused(spelling: str, source_db: Database) -> None:
    source_db.execute("CREATE TABLE precious (id int); INSERT INTO precious VALUES (1), (2)")
    source_db.execute(
        "DO $$ BEGIN CREATE ROLE other_user LOGIN SUPERUSER PASSWORD 'other-pw'; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    target = _spellings(source_db)[spelling]
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target, "--clean")
    assert_one_line_error(run, "target:", "is the source database itself")
    assert source_db.scalar("SELECT count(*) FROM precious") == 2
    preflight = ferry("pg", "preflight", "--source", source_db.url, "--target", target, "--json")
    assert preflight.code == 1
    check = next(c for c in preflight.json["checks"] if c["name"] == "target is not the source")
    assert check["status"] == "fail"


def test_another_database_on_the_same_server_is_a_valid_target(source_db: Database, target_db: Database) -> None:
    """Consolidation onto one instance stays possible: only the very same database is refused."""
    source_db.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (7)")
    sibling = source_db.cluster.url(target_db.name + "_sibling")
    run = ferry("pg", "copy", "--source", source_db.url, "--target", sibling, "--create-database")
    assert run.code == 0, run.output
    assert source_db.scalar("SELECT id FROM t") == 7


def test_clean_with_a_filter_matching_nothing_leaves_the_target_alone(source_db: Database, target_db: Database) -> None:
    source_db.execute("CREATE TABLE t (id int)")
    target_db.execute("CREATE TABLE precious (id int); INSERT INTO precious VALUES (42)")
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--clean", "-t", "nosuchtable")
    assert_one_line_error(run, "source:", "no matching tables")
    assert target_db.scalar("SELECT id FROM precious") == 42
