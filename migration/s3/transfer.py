"""Copying one object with its metadata and tags: server-side when one identity can do it,
otherwise streamed through memory, part by part, never through a file.

Multipart objects are copied with the source's own part boundaries, so the target's ETag
equals the source's and the next run can compare them from listings. Where that is not
possible (a large single-part source cut into parts), the source ETag is stored in the
target's metadata as ``ferry-source-etag``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import botocore.exceptions

from migration.crashpoints import crashpoint
from migration.s3.client import S3Location, s3_errors

__all__ = ["TransferSettings", "copy_object", "stored_source_etag"]

_HEADERS = ("ContentType", "ContentEncoding", "CacheControl", "ContentDisposition", "ContentLanguage", "Expires")
SOURCE_ETAG = "ferry-source-etag"
MIN_PART = 5 * 1024 * 1024


@dataclass(frozen=True)
class TransferSettings:
    """:param single_part_limit: objects up to this size travel in one request."""

    server_side: bool
    acl: str | None = None
    storage_class: str | None = None
    single_part_limit: int = 64 * 1024 * 1024
    part_size: int = 16 * 1024 * 1024
    #: Write only where the target has no such key (``If-None-Match: *``): a concurrent write there wins.
    if_absent: bool = False
    #: Write only over the target object with this ETag (``If-Match``): a concurrent write there wins.
    if_etag: str | None = None

    def conditions(self) -> dict[str, str]:
        """The target write's conditions, as botocore's parameters (S3 answers 412 when one fails)."""
        if self.if_absent:
            return {"IfNoneMatch": "*"}
        return {"IfMatch": self.if_etag} if self.if_etag else {}


def _tags(client: Any, location: S3Location, key: str) -> str | None:
    with s3_errors("source", location.bucket):
        tags = client.get_object_tagging(Bucket=location.bucket, Key=location.prefix + key).get("TagSet", [])
    return urlencode([(t["Key"], t["Value"]) for t in tags]) if tags else None


def _write_args(
    head: dict[str, Any], tags: str | None, settings: TransferSettings, extra_meta: dict[str, str]
) -> dict[str, Any]:
    args: dict[str, Any] = {name: head[name] for name in _HEADERS if head.get(name)}
    args["Metadata"] = {**head.get("Metadata", {}), **extra_meta}
    if tags:
        args["Tagging"] = tags
    if settings.acl:
        args["ACL"] = settings.acl
    if settings.storage_class:
        args["StorageClass"] = settings.storage_class
    return args


def _part_ranges(
    client: Any, src: S3Location, key: str, size: int, etag: str, settings: TransferSettings
) -> list[tuple[int, int]]:
    """Byte ranges of the source's parts (its own boundaries when it is multipart)."""
    if "-" in etag:
        parts = int(etag.rsplit("-", 1)[1])
        with s3_errors("source", src.bucket):
            first = client.head_object(Bucket=src.bucket, Key=src.prefix + key, PartNumber=1)
        part = int(first["ContentLength"])
        if parts > 1 and part * (parts - 1) < size <= part * parts:
            return [(i * part, min(size, (i + 1) * part) - 1) for i in range(parts)]
    part = max(MIN_PART, settings.part_size)
    return [(start, min(size, start + part) - 1) for start in range(0, size, part)]


def _copy_whole(
    source_client: Any, target_client: Any, src: S3Location, dst: S3Location, key: str, settings: TransferSettings
) -> int:
    """One request (server-side) or two (streamed), plus one for tags only when there are some."""
    target_key = dst.prefix + key
    if settings.server_side:
        extra = {"ACL": settings.acl} if settings.acl else {}
        if settings.storage_class:
            extra["StorageClass"] = settings.storage_class
        with s3_errors("target", dst.bucket):
            reply = target_client.copy_object(
                Bucket=dst.bucket, Key=target_key, CopySource={"Bucket": src.bucket, "Key": src.prefix + key},
                MetadataDirective="COPY", TaggingDirective="COPY", **extra, **settings.conditions(),
            )  # fmt: skip
        return int(reply.get("CopyObjectResult", {}).get("Size", 0) or 0)
    with s3_errors("source", src.bucket):
        got = source_client.get_object(Bucket=src.bucket, Key=src.prefix + key)
        body = got["Body"].read()
    tags = _tags(source_client, src, key) if got.get("TagCount") else None
    with s3_errors("target", dst.bucket):
        target_client.put_object(
            Bucket=dst.bucket,
            Key=target_key,
            Body=body,
            **_write_args(got, tags, settings, {}),
            **settings.conditions(),
        )
    return len(body)


def copy_object(
    source_client: Any, target_client: Any, src: S3Location, dst: S3Location, key: str, size: int, etag: str,
    settings: TransferSettings,
) -> int:  # fmt: skip
    """Copy one object with its metadata and tags; returns the bytes moved."""
    if "-" not in etag and size <= settings.single_part_limit:
        moved = _copy_whole(source_client, target_client, src, dst, key, settings)
        return moved or size
    with s3_errors("source", src.bucket):
        head = source_client.head_object(Bucket=src.bucket, Key=src.prefix + key)
    tags = _tags(source_client, src, key)
    # Kept whatever the source's layout: parts of unequal sizes cannot be cut again the same way, so the
    # copy's own ETag may differ even from a multipart source's.
    extra = {SOURCE_ETAG: etag}
    args = _write_args(head, tags, settings, extra)
    target_key = dst.prefix + key
    ranges = _part_ranges(source_client, src, key, size, etag, settings)
    with s3_errors("target", dst.bucket):
        if not settings.conditions():  # after the switch an unfinished upload of this key may be the app's
            _abort_stale_uploads(target_client, dst.bucket, target_key)
        upload = target_client.create_multipart_upload(Bucket=dst.bucket, Key=target_key, **args)
    try:
        parts = []
        for number, (first, last) in enumerate(ranges, start=1):
            byte_range = f"bytes={first}-{last}"
            if settings.server_side:
                with s3_errors("target", dst.bucket):
                    reply = target_client.upload_part_copy(
                        Bucket=dst.bucket, Key=target_key, UploadId=upload["UploadId"], PartNumber=number,
                        CopySource={"Bucket": src.bucket, "Key": src.prefix + key}, CopySourceRange=byte_range,
                    )  # fmt: skip
                parts.append({"PartNumber": number, "ETag": reply["CopyPartResult"]["ETag"]})
                continue
            with s3_errors("source", src.bucket):
                data = source_client.get_object(Bucket=src.bucket, Key=src.prefix + key, Range=byte_range)[
                    "Body"
                ].read()
            with s3_errors("target", dst.bucket):
                reply = target_client.upload_part(
                    Bucket=dst.bucket, Key=target_key, UploadId=upload["UploadId"], PartNumber=number, Body=data
                )
            parts.append({"PartNumber": number, "ETag": reply["ETag"]})
            crashpoint("s3-part")
        with s3_errors("target", dst.bucket):
            target_client.complete_multipart_upload(
                Bucket=dst.bucket, Key=target_key, UploadId=upload["UploadId"], MultipartUpload={"Parts": parts},
                **settings.conditions(),
            )  # fmt: skip
    except BaseException:
        with s3_errors("target", dst.bucket):
            target_client.abort_multipart_upload(Bucket=dst.bucket, Key=target_key, UploadId=upload["UploadId"])
        raise
    return size


def _abort_stale_uploads(client: Any, bucket: str, key: str) -> None:
    """Uploads of this very key left unfinished by a killed run: invisible in listings, yet billed."""
    listing = client.list_multipart_uploads(Bucket=bucket, Prefix=key)
    for upload in listing.get("Uploads", []):
        if upload["Key"] == key:
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])


def stored_source_etag(client: Any, location: S3Location, key: str) -> str | None:
    """The source ETag ferry stored on a target object, when its own ETag cannot match (``None`` also when
    the object is gone since it was listed)."""
    with s3_errors("target", location.bucket):
        try:
            head = client.head_object(Bucket=location.bucket, Key=location.prefix + key)
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
    value = head.get("Metadata", {}).get(SOURCE_ETAG)
    return str(value) if value else None
