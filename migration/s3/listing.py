"""Listings streamed page by page, and diffed by merging: memory stays flat for millions of keys.

S3 lists keys in UTF-8 binary order on both sides, so two listings merge like sorted files.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from migration.errors import Side
from migration.s3.client import S3Location, s3_errors

__all__ = ["Change", "ObjectInfo", "diff_listings", "list_objects"]


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object; *key* is relative to the location's prefix."""

    key: str
    size: int
    etag: str

    @property
    def multipart(self) -> bool:
        return "-" in self.etag


Action = Literal["copy", "delete", "check"]


@dataclass(frozen=True)
class Change:
    """What to do about one key: copy it, delete it from the target, or look closer (``check``:
    same size but ETags that cannot be compared from listings alone)."""

    action: Action
    key: str
    source: ObjectInfo | None
    target: ObjectInfo | None


def _pages(client: Any, location: S3Location, side: Side) -> Iterator[list[ObjectInfo]]:
    paginator = client.get_paginator("list_objects_v2")
    with s3_errors(side, location.bucket):
        for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
            yield [
                ObjectInfo(item["Key"][len(location.prefix) :], int(item["Size"]), item["ETag"].strip('"'))
                for item in page.get("Contents", [])
            ]


def list_objects(client: Any, location: S3Location, side: Side, prefetch: int = 4) -> Iterator[ObjectInfo]:
    """The location's objects in key order; pages are fetched ahead in a thread (at most
    *prefetch* pages held), so listing the source and the target overlap."""
    pages: queue.Queue[list[ObjectInfo] | BaseException | None] = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def fetch() -> None:
        try:
            for page in _pages(client, location, side):
                while not stop.is_set():
                    try:
                        pages.put(page, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            pages.put(None)
        except BaseException as exc:  # handed to the consuming thread
            pages.put(exc)

    thread = threading.Thread(target=fetch, name=f"ferry-s3-list-{side}", daemon=True)
    thread.start()
    try:
        while True:
            page = pages.get()
            if page is None:
                return
            if isinstance(page, BaseException):
                raise page
            yield from page
    finally:
        stop.set()


def _compare(source: ObjectInfo, target: ObjectInfo) -> Action | None:
    if source.size != target.size:
        return "copy"
    if source.etag == target.etag:
        return None
    if source.multipart or target.multipart:
        return "check"  # multipart ETags depend on part sizes: the stored source ETag decides
    return "copy"


def diff_listings(source: Iterator[ObjectInfo], target: Iterator[ObjectInfo]) -> Iterator[Change]:
    """Merge two sorted listings into the changes that make the target match the source."""
    src = next(source, None)
    dst = next(target, None)
    while src is not None or dst is not None:
        if dst is None or (src is not None and src.key.encode() < dst.key.encode()):
            assert src is not None
            yield Change("copy", src.key, src, None)
            src = next(source, None)
        elif src is None or dst.key.encode() < src.key.encode():
            yield Change("delete", dst.key, None, dst)
            dst = next(target, None)
        else:
            action = _compare(src, dst)
            if action is not None:
                yield Change(action, src.key, src, dst)
            src, dst = next(source, None), next(target, None)
