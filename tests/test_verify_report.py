"""One verify report shape for every store: the same JSON keys, a cap on listed differences with a total."""

from __future__ import annotations

from migration.rehearse.motoserver import running_moto
from migration.rehearse.redisserver import running_redis
from migration.verify import MAX_LISTED, Difference, VerifyReport
from tests.conftest import Database
from tests.helpers import ferry, s3_client, s3_env

KEYS = {"store", "identical", "checked", "differences", "differences_total", "notes", "seconds"}


def test_differences_are_listed_up_to_the_cap_and_counted_beyond() -> None:
    report = VerifyReport("test")
    for i in range(MAX_LISTED + 25):
        report.add(Difference("value", f"k{i}", "a", "b"))
    data = report.to_json()
    assert not report.identical and data["differences_total"] == MAX_LISTED + 25
    assert len(data["differences"]) == MAX_LISTED


def test_every_store_answers_in_the_same_shape(source_db: Database, target_db: Database) -> None:
    source_db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
    target_db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    reports = {"postgres": ferry("pg", "verify", "--source", source_db.url, "--target", target_db.url, "--json")}
    with running_redis() as source, running_redis() as target:
        import redis

        redis.Redis(port=source.port, password=source.password).set("only-on-source", "1")
        reports["redis"] = ferry("redis", "verify", "--source", source.url(), "--target", target.url(), "--json")
    with running_moto() as moto:
        client = s3_client(moto.endpoint)
        client.create_bucket(Bucket="shape-src")
        client.create_bucket(Bucket="shape-dst")
        client.put_object(Bucket="shape-src", Key="a.txt", Body=b"a")
        env = s3_env(moto.endpoint, moto.endpoint)
        reports["s3"] = ferry("s3", "verify", "s3://shape-src/", "s3://shape-dst/", "--json", env=env)
    for store, run in reports.items():
        assert run.code == 1, run.output
        data = run.json
        assert set(data) >= KEYS and data["store"] == store and data["identical"] is False
        assert data["differences_total"] == len(data["differences"]) >= 1
        assert set(data["differences"][0]) == {"kind", "name", "source", "target"}
        assert all(isinstance(n, int) for n in data["checked"].values()) and data["checked"]
