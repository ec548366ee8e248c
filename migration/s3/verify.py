"""``ferry s3 verify``: both listings compared — count, sizes, checksums — exit 0 when identical."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from migration.errors import Side
from migration.s3.client import S3Location, S3Side, parse_location, s3_errors
from migration.s3.listing import diff_listings, list_objects
from migration.s3.transfer import stored_source_etag
from migration.verify import Difference, VerifyReport

__all__ = ["S3VerifyReport", "content_md5", "verify_buckets"]


def content_md5(client: Any, location: S3Location, key: str, side: Side) -> str:
    """MD5 of an object's bytes, streamed in 8 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with s3_errors(side, location.bucket):
        body = client.get_object(Bucket=location.bucket, Key=location.prefix + key)["Body"]
        for chunk in iter(lambda: body.read(8 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class S3VerifyReport(VerifyReport):
    """An S3 verification: both listings, sizes and checksums."""

    store: str = "s3"
    source_objects: int = 0
    target_objects: int = 0
    source_bytes: int = 0

    def checked(self) -> dict[str, int]:
        return {"objects": self.source_objects, "bytes": self.source_bytes}

    def details(self) -> dict[str, Any]:
        return {"target_objects": self.target_objects}

    def summary(self) -> str:
        return (
            f"{self.source_objects} source objects ({self.source_bytes} bytes), {self.target_objects} target "
            f"objects, in {self.seconds:.1f} s"
        )


def verify_buckets(
    source_url: str, target_url: str, *, source: S3Side | None = None, target: S3Side | None = None
) -> S3VerifyReport:
    """Compare the two locations' listings (and checksums where ETags cannot tell).

    :param source: credentials and endpoint of the source side (default: from ``FERRY_S3_SOURCE_*``).
    :param target: the same for the target side (default: from ``FERRY_S3_TARGET_*``).
    """
    started = time.monotonic()
    source = source or S3Side.from_env("source")
    target = target or S3Side.from_env("target")
    src, dst = parse_location(source_url, "source"), parse_location(target_url, "target")
    source_client = source.client()
    target_client = source_client if source.identity() == target.identity() else target.client()
    report = S3VerifyReport()

    def counted_source() -> Any:
        for item in list_objects(source_client, src, "source"):
            report.source_objects += 1
            report.source_bytes += item.size
            yield item

    def counted_target() -> Any:
        for item in list_objects(target_client, dst, "target"):
            report.target_objects += 1
            yield item

    for change in diff_listings(counted_source(), counted_target()):
        if change.action == "delete":
            report.add(Difference("extra on target", change.key, "-", str(change.target and change.target.size)))
        elif change.target is None:
            report.add(Difference("missing on target", change.key, str(change.source and change.source.size), "-"))
        elif change.action == "check":
            assert change.source is not None
            if stored_source_etag(target_client, dst, change.key) == change.source.etag:
                continue
            # ETags of different part layouts cannot be compared: compare the bytes' MD5.
            source_md5 = (
                change.source.etag
                if not change.source.multipart
                else content_md5(source_client, src, change.key, "source")
            )
            target_md5 = (
                change.target.etag
                if not change.target.multipart
                else content_md5(target_client, dst, change.key, "target")
            )
            if source_md5 != target_md5:
                report.add(Difference("checksum", change.key, source_md5, target_md5))
        else:
            assert change.source is not None
            kind = "size" if change.source.size != change.target.size else "checksum"
            shown = (
                (str(change.source.size), str(change.target.size))
                if kind == "size"
                else (change.source.etag, change.target.etag)
            )
            report.add(Difference(kind, change.key, *shown))
    report.seconds = time.monotonic() - started
    return report
