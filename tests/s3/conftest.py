"""moto's S3 servers (two: they stand for two accounts) and buckets on them, for the S3 tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from migration.rehearse.motoserver import MotoServer, running_moto


def s3(server: MotoServer) -> Any:
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip


@pytest.fixture(scope="session")
def moto_pair() -> Iterator[tuple[MotoServer, MotoServer]]:
    with running_moto() as source, running_moto() as target:
        yield source, target


_bucket_counter = iter(range(10**6))


@pytest.fixture
def buckets(moto_pair: tuple[MotoServer, MotoServer]) -> tuple[str, str]:
    n = next(_bucket_counter)
    src, dst = f"old-bucket-{os.getpid()}-{n}", f"new-bucket-{os.getpid()}-{n}"
    s3(moto_pair[0]).create_bucket(Bucket=src)
    s3(moto_pair[1]).create_bucket(Bucket=dst)
    return src, dst


def env(moto_pair: tuple[MotoServer, MotoServer], same: bool = False) -> dict[str, str]:
    source, target = moto_pair
    return {
        **os.environ,
        "FERRY_S3_SOURCE_ENDPOINT_URL": source.endpoint,
        "FERRY_S3_TARGET_ENDPOINT_URL": (source if same else target).endpoint,
        "FERRY_S3_SOURCE_REGION": "us-east-1",
        "FERRY_S3_TARGET_REGION": "us-east-1",
        "FERRY_S3_SOURCE_ACCESS_KEY_ID": "source-key",
        "FERRY_S3_SOURCE_SECRET_ACCESS_KEY": "source-secret-value-1",
        "FERRY_S3_TARGET_ACCESS_KEY_ID": "source-key" if same else "target-key",
        "FERRY_S3_TARGET_SECRET_ACCESS_KEY": "source-secret-value-1" if same else "target-secret-value-2",
    }
