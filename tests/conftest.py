"""Real PostgreSQL clusters for the tests: one source and one target per test process.

Each test gets fresh, uniquely named databases on them, so tests never see each
other's data and the clusters start only once per worker.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from migration.rehearse.pgcluster import Cluster, running_cluster

SQL_DIR = Path(__file__).parent / "sql"
#: The runbook tests' world (fake Heroku, Redis servers, a stack file), shared by every file that needs it.
pytest_plugins = ["tests.support.world"]
_counter = itertools.count()


@pytest.fixture(scope="session")
def source_cluster() -> Iterator[Cluster]:
    # Prepared transactions allowed: one left open across the fence must be seen and refused.
    with running_cluster(settings={"max_prepared_transactions": "10"}) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def target_cluster() -> Iterator[Cluster]:
    with running_cluster() as cluster:
        yield cluster


@dataclass
class Database:
    """A database on a test cluster, with a URL and a quick way to run SQL."""

    cluster: Cluster
    name: str

    @property
    def url(self) -> str:
        return self.cluster.url(self.name)

    def execute(self, sql: str, params: tuple[object, ...] | None = None) -> list[tuple[object, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def scalar(self, sql: str, params: tuple[object, ...] | None = None) -> object:
        return self.execute(sql, params)[0][0]

    def run_file(self, name: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute((SQL_DIR / name).read_text())


def _new_database(cluster: Cluster, prefix: str) -> Database:
    name = f"{prefix}_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return Database(cluster, name)


@pytest.fixture
def source_db(source_cluster: Cluster) -> Database:
    return _new_database(source_cluster, "src")


@pytest.fixture
def target_db(target_cluster: Cluster) -> Database:
    return _new_database(target_cluster, "dst")


@pytest.fixture
def kitchen_sink(source_db: Database) -> Database:
    """A source database holding every feature the copy must carry."""
    source_db.run_file("kitchen_sink.sql")
    return source_db
