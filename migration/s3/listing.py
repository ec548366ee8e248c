"""Listings streamed page by page, and diffed by merging: memory stays flat for millions of keys.

S3 lists keys in UTF-8 binary order on both sides, so two listings merge like sorted files.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeVar

from migration.errors import Side
from migration.s3.client import S3Location, s3_errors

__all__ = ["Change", "ObjectInfo", "ahead", "diff_listings", "list_objects"]

T = TypeVar("T")


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object; *key* is relative to the location's prefix."""

    key: str
    size: int
    etag: str
    #: When S3 last wrote it, as the listing says it (ISO 8601 text: the fast parser keeps it a string).
    modified: str = ""

    @property
    def multipart(self) -> bool:
        return "-" in self.etag

    @property
    def modified_at(self) -> float:
        """:attr:`modified` in seconds since the epoch (0 when the listing gave none)."""
        if not self.modified:
            return 0.0
        return datetime.fromisoformat(self.modified.replace("Z", "+00:00")).timestamp()


Action = Literal["copy", "delete", "check", "same"]


@dataclass(frozen=True)
class Change:
    """What to do about one key: copy it, delete it from the target, or look closer (``check``:
    same size but ETags that cannot be compared from listings alone; ``same``: nothing to do, yielded
    only when asked for)."""

    action: Action
    key: str
    source: ObjectInfo | None
    target: ObjectInfo | None


def _pages(client: Any, location: S3Location, side: Side) -> Iterator[list[ObjectInfo]]:
    paginator = client.get_paginator("list_objects_v2")
    with s3_errors(side, location.bucket):
        for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
            yield [_info(item, len(location.prefix)) for item in page.get("Contents", [])]


def _info(item: dict[str, Any], prefix: int) -> ObjectInfo:
    return ObjectInfo(
        item["Key"][prefix:], int(item["Size"]), item["ETag"].strip('"'), _timestamp(item.get("LastModified"))
    )


def _timestamp(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value or "")


def ahead(items: Iterator[T], capacity: int, name: str, give_up: Callable[[], bool] | None = None) -> Iterator[T]:
    """*items*, produced in a thread at most *capacity* ahead of the consumer.

    An error in the producer is raised in the consumer; a consumer that stops early stops it.

    :param give_up: asked while the consumer waits for the next item: true ends the items there (a
        listing page under way is not waited for; the producer stops at its next item).
    """
    buffer: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=capacity)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as exc:  # handed to the consuming thread
            put((False, exc))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            try:
                is_item, value = buffer.get(timeout=0.02 if give_up else None)
            except queue.Empty:
                if give_up is not None and give_up():
                    return
                continue
            if not is_item:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()


def list_objects(client: Any, location: S3Location, side: Side, prefetch: int = 4) -> Iterator[ObjectInfo]:
    """The location's objects in key order; pages are fetched ahead in a thread (at most
    *prefetch* pages held), so listing the source and the target overlap."""
    for page in ahead(_pages(client, location, side), prefetch, f"ferry-s3-list-{side}"):
        yield from page


def _compare(source: ObjectInfo, target: ObjectInfo) -> Action | None:
    if source.size != target.size:
        return "copy"
    if source.etag == target.etag:
        return None
    if source.multipart or target.multipart:
        return "check"  # multipart ETags depend on part sizes: the stored source ETag decides
    return "copy"


def diff_listings(
    source: Iterator[ObjectInfo], target: Iterator[ObjectInfo], *, same: bool = False
) -> Iterator[Change]:
    """Merge two sorted listings into the changes that make the target match the source.

    :param same: also yield the keys that are identical on both sides (action ``same``)."""
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
            if action is not None or same:
                yield Change(action or "same", src.key, src, dst)
            src, dst = next(source, None), next(target, None)
