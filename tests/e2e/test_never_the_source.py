"""A target that is the source, under any spelling, is refused before anything is written.

Whatever destructive flag comes with it (``--clean``, ``--flush-target``, ``--delete``),
and however the URLs spell host, port, socket or user, the source keeps every row, key
and object.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
import redis

from migration.rehearse.motoserver import MotoServer, running_moto
from migration.rehearse.redisserver import RedisServer, running_redis
from tests.conftest import Database
from tests.helpers import assert_one_line_error, ferry, s3_client, s3_env


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


@pytest.fixture
def redis_source() -> Iterator[RedisServer]:
    with running_redis() as server:
        r = redis.Redis(port=server.port, password=server.password)
        r.set("precious", "1")
        r.set("ttl", "2", ex=3600)
        redis.Redis(port=server.port, password=server.password, db=3).set("other-db", "3")
        yield server


def _redis_keys(server: RedisServer) -> int:
    return sum(int(redis.Redis(port=server.port, password=server.password, db=db).dbsize()) for db in range(16))


@pytest.mark.parametrize("flag", ["--flush-target", "--merge", "--replicaof", "--live-seconds=1"])
def test_redis_copy_onto_the_source_is_refused(flag: str, redis_source: RedisServer) -> None:
    source = f"redis://:{redis_source.password}@127.0.0.1:{redis_source.port}"
    target = f"redis://:{redis_source.password}@localhost:{redis_source.port}/0"
    run = ferry("redis", "copy", "--source", source, "--target", target, flag, timeout=60)
    assert_one_line_error(run, "target:", "is the source server itself")
    assert redis_source.password not in run.output
    assert _redis_keys(redis_source) == 3
    role = redis.Redis(port=redis_source.port, password=redis_source.password).info("replication")["role"]
    assert role == "master"
    preflight = ferry("redis", "preflight", "--source", source, "--target", target, "--json")
    check = next(c for c in preflight.json["checks"] if c["name"] == "target is not the source")
    assert preflight.code == 1 and check["status"] == "fail"


@pytest.mark.parametrize(
    ("path", "message"),
    [("/abc", "/abc is not a database number"), ("/99", "names database 99, but ferry copies every database")],
)
def test_redis_url_paths_are_not_ignored(path: str, message: str, redis_source: RedisServer) -> None:
    source = f"redis://:{redis_source.password}@127.0.0.1:{redis_source.port}{path}"
    run = ferry("redis", "copy", "--source", source, "--target", "redis://127.0.0.1:1")
    assert_one_line_error(run, "source:", message)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with running_moto() as server:
        yield server


@pytest.mark.parametrize(
    ("source", "target", "target_host"),
    [
        ("s3://shared/app/", "s3://shared/", "127.0.0.1"),  # the source inside the target: --delete ate it
        ("s3://shared/", "s3://shared/copy/", "localhost"),  # the target inside the source: grew every run
        ("s3://shared/app", "s3://shared/app/", "localhost"),  # the same keys, spelled twice
    ],
)
def test_s3_sync_between_overlapping_locations_is_refused(
    source: str, target: str, target_host: str, moto: MotoServer
) -> None:
    client = s3_client(moto.endpoint)
    client.create_bucket(Bucket="shared")
    client.put_object(Bucket="shared", Key="app/precious.txt", Body=b"keep me")
    client.put_object(Bucket="shared", Key="other.txt", Body=b"other")
    env = s3_env(moto.endpoint, moto.endpoint.replace("127.0.0.1", target_host))
    for extra in (["--delete"], []):
        run = ferry("s3", "sync", source, target, *extra, env=env)
        assert_one_line_error(run, "target:", "overlaps the source")
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="shared")["Contents"])
    assert keys == ["app/precious.txt", "other.txt"]


def test_s3_sibling_prefixes_of_one_bucket_are_fine(moto: MotoServer) -> None:
    client = s3_client(moto.endpoint)
    client.create_bucket(Bucket="siblings")
    client.put_object(Bucket="siblings", Key="old/a.txt", Body=b"a")
    env = s3_env(moto.endpoint, moto.endpoint, same_keys=True)
    run = ferry("s3", "sync", "s3://siblings/old/", "s3://siblings/new/", "--delete", env=env)
    assert run.code == 0, run.output
    assert client.get_object(Bucket="siblings", Key="new/a.txt")["Body"].read() == b"a"
    assert client.get_object(Bucket="siblings", Key="old/a.txt")["Body"].read() == b"a"
