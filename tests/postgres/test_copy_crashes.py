"""kill -9 of ``ferry redis copy`` and ``ferry s3 sync`` at many points, then the next run: identical.

The PostgreSQL copy has its own, longer list (tests/postgres/test_crash.py). Here each named
crash point (``FERRY_CRASH_AT``) is hit at several of its passages: after a batch of
keys reached the target, halfway through a key copied element by element (its temporary
key left behind), after a live batch, after an object, after one part of a multipart
upload (the upload left unfinished), before deletions.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
import redis

from migration.redis.verify import verify_redis
from migration.rehearse.motoserver import MotoServer, running_moto
from migration.rehearse.redisserver import RedisServer, running_redis
from tests.helpers import ferry, s3_client, s3_env

REDIS_POINTS = ["redis-batch:1", "redis-batch:4", "redis-elements:1", "redis-elements:3", "redis-live-batch:1"]
S3_POINTS = ["s3-object:1", "s3-object:7", "s3-part:1", "s3-part:2", "s3-delete:1"]


def _env(crash_at: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "FERRY_CRASH_AT"}
    if crash_at:
        env["FERRY_CRASH_AT"] = crash_at
    return {**env, **extra}


@pytest.fixture(scope="module")
def redis_servers() -> Iterator[tuple[RedisServer, RedisServer]]:
    with running_redis() as source, running_redis(password="crash-target-pw") as target:
        yield source, target


@pytest.mark.parametrize("point", REDIS_POINTS)
def test_a_killed_redis_copy_ends_identical_after_the_next_run(
    point: str, redis_servers: tuple[RedisServer, RedisServer]
) -> None:
    source, target = redis_servers
    src = redis.Redis(port=source.port, password=source.password)
    dst = redis.Redis(port=target.port, password=target.password)
    src.flushall()
    dst.flushall()
    for i in range(400):
        src.set(f"s:{i}", i, ex=3600 if i % 2 else None)
    for i in range(6):
        src.rpush(f"list:{i}", *[f"item{j}" for j in range(300)])  # over --max-restore-bytes: by elements
        src.hset(f"hash:{i}", mapping={f"f{j}": j for j in range(300)})
    redis.Redis(port=source.port, password=source.password, db=2).set("db2", "two")
    args = ["redis", "copy", "--source", source.url(), "--target", target.url(), "--batch", "50", "--jobs", "2",
            "--max-restore-bytes", "1kB"]  # fmt: skip
    live = ["--live-seconds", "20"] if point.startswith("redis-live") else []
    stop = threading.Event()

    def write_while_live() -> None:
        writer = redis.Redis(port=source.port, password=source.password)
        i = 0
        while not stop.wait(0.05):
            writer.set(f"written:live:{i}", i)
            i += 1

    writing = threading.Thread(target=write_while_live, daemon=True)
    if live:
        writing.start()
    try:
        killed = ferry(*args, *live, env=_env(point), timeout=60)
    finally:
        stop.set()
        if live:
            writing.join()
    assert killed.code == -9, killed.output
    again = ferry(*args, "--merge", env=_env(None), timeout=60)
    assert again.code == 0, again.output
    report = verify_redis(source.url(), target.url())
    assert report.identical, report.differences[:5]
    assert not list(dst.scan_iter(match="__ferry_tmp__:*"))


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with running_moto() as server:
        yield server


_buckets = iter(range(10**6))


@pytest.mark.parametrize("point", S3_POINTS)
def test_a_killed_s3_sync_ends_identical_after_the_next_run(point: str, moto: MotoServer) -> None:
    client = s3_client(moto.endpoint)
    n = next(_buckets)
    source, target = f"crash-src-{n}", f"crash-dst-{n}"
    client.create_bucket(Bucket=source)
    client.create_bucket(Bucket=target)
    for i in range(20):
        client.put_object(Bucket=source, Key=f"small/{i}.txt", Body=f"object {i}".encode(), Metadata={"i": str(i)})
    # A multipart source object: copied part by part with the source's own boundaries.
    upload = client.create_multipart_upload(Bucket=source, Key="big.bin")
    parts = []
    for number, size in enumerate((5 << 20, 5 << 20, 1 << 20), start=1):
        reply = client.upload_part(Bucket=source, Key="big.bin", UploadId=upload["UploadId"], PartNumber=number,
                                   Body=os.urandom(size))  # fmt: skip
        parts.append({"PartNumber": number, "ETag": reply["ETag"]})
    client.complete_multipart_upload(Bucket=source, Key="big.bin", UploadId=upload["UploadId"],
                                     MultipartUpload={"Parts": parts})  # fmt: skip
    client.put_object(Bucket=target, Key="stale.txt", Body=b"only on the target")
    env = {k: v for k, v in s3_env(moto.endpoint, moto.endpoint).items() if k.startswith("FERRY_S3_")}
    args = ["s3", "sync", f"s3://{source}/", f"s3://{target}/", "--delete", "--jobs", "2",
            "--multipart-threshold", "5MB"]  # fmt: skip
    killed = ferry(*args, env=_env(point, **env), timeout=120)
    assert killed.code == -9, killed.output
    again = ferry(*args, env=_env(None, **env), timeout=120)
    assert again.code == 0, again.output
    verify = ferry("s3", "verify", f"s3://{source}/", f"s3://{target}/", env=_env(None, **env))
    assert verify.code == 0, verify.output
    assert client.head_object(Bucket=target, Key="small/3.txt")["Metadata"] == {"i": "3"}
    assert not client.list_multipart_uploads(Bucket=target).get("Uploads")
