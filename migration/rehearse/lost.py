"""What the app acknowledged and one side's stores do not hold: the rehearsal's count of lost writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg

from migration.redis.connection import RespConn, encode
from migration.redis.url import parse_redis_url
from migration.rehearse.app import AVATAR, upload_key

__all__ = ["Sides", "acknowledged_before", "lost_writes"]

#: store → write id → (when, the bucket it went to for s3), as :class:`~.report.AppLog` holds them.
Acknowledged = dict[str, dict[int, tuple[float, str]]]


@dataclass(frozen=True)
class Sides:
    """One side's stores as the app reaches them: database URL, Redis URL, bucket."""

    database: str = field(repr=False)
    redis: str = field(repr=False)
    bucket: str


def lost_writes(side: Sides, s3_client: Any, acknowledged: Acknowledged, *, last_upload: bool) -> dict[str, int]:
    """Per store: writes in *acknowledged* that *side*'s stores do not hold.

    :param last_upload: the app's last acknowledged overwrite of its avatar must be what the bucket holds
        (nothing older over it): for the stores the app ends on."""
    bucket = side.bucket
    with psycopg.connect(side.database) as conn:
        present = {int(row[0]) for row in conn.execute("SELECT id FROM app_writes").fetchall()}
    ids = sorted(acknowledged["redis"])
    with RespConn(parse_redis_url(side.redis, "target")) as cache:
        exists = cache.pipeline([encode("EXISTS", f"write:{write_id}") for write_id in ids]) if ids else []
    uploaded = {
        item["Key"]
        for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="uploads/w-")
        for item in page.get("Contents", [])
    }
    lost_s3 = sum(1 for write_id in acknowledged["s3"] if upload_key(write_id) not in uploaded)
    last_avatar = max(acknowledged["s3"], default=0)
    if last_upload and last_avatar:
        held = s3_client.get_object(Bucket=bucket, Key=AVATAR)["Body"].read().decode()
        lost_s3 += held != str(last_avatar)
    return {
        "postgres": len(set(acknowledged["postgres"]) - present),
        "redis": sum(1 for found in exists if not found),
        "s3": lost_s3,
    }


def acknowledged_before(acknowledged: Acknowledged, moment: float) -> Acknowledged:
    """The writes acknowledged before *moment*."""
    return {store: {i: ack for i, ack in acks.items() if ack[0] < moment} for store, acks in acknowledged.items()}
