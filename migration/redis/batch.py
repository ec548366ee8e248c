"""Copying a batch of keys: ``DUMP`` + ``PTTL`` pipelined on the source, ``RESTORE … REPLACE ABSTTL``
pipelined on the target.

Replies are consumed in slices so that no more than *inflight_bytes* of payloads sit in
memory; a key that vanished (or expired) between SCAN and DUMP is skipped, or deleted on
the target when following live changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import hiredis

from migration.crashpoints import crashpoint
from migration.redis.connection import RespConn, translate
from migration.redis.elements import copy_by_elements

__all__ = ["BatchResult", "CopySettings", "copy_keys"]

# Whole commands formatted in one operation each: this loop runs once per key.
_DUMP_PTTL = b"*2\r\n$4\r\nDUMP\r\n$%d\r\n%b\r\n*2\r\n$4\r\nPTTL\r\n$%d\r\n%b\r\n"
_RESTORE_ABSTTL = b"*6\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$%d\r\n%d\r\n$%d\r\n%b\r\n$7\r\nREPLACE\r\n$6\r\nABSTTL\r\n"
_RESTORE = b"*5\r\n$7\r\nRESTORE\r\n$%d\r\n%b\r\n$1\r\n0\r\n$%d\r\n%b\r\n$7\r\nREPLACE\r\n"
_SLICE = 64


@dataclass(frozen=True)
class CopySettings:
    """How keys travel.

    :param restore_compatible: the target understands the source's DUMP format.
    :param max_restore_bytes: payloads larger than this are copied element by element.
    :param inflight_bytes: payload bytes held in memory at once, per connection pair.
    """

    restore_compatible: bool = True
    max_restore_bytes: int = 256 << 20
    inflight_bytes: int = 32 << 20


@dataclass
class BatchResult:
    copied: int = 0
    vanished: int = 0
    by_elements: int = 0
    deleted: int = 0
    payload_bytes: int = 0

    def add(self, other: BatchResult) -> None:
        self.copied += other.copied
        self.vanished += other.vanished
        self.by_elements += other.by_elements
        self.deleted += other.deleted
        self.payload_bytes += other.payload_bytes


def _key_arg(key: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(key), key)


def _restore(key: bytes, payload: bytes, expire_at: int) -> bytes:
    if expire_at:
        return _RESTORE_ABSTTL % (len(key), key, len(str(expire_at)), expire_at, len(payload), payload)
    return _RESTORE % (len(key), key, len(payload), payload)


def _delete(key: bytes) -> bytes:
    return b"*2\r\n$3\r\nDEL\r\n" + _key_arg(key)


def _check(replies: list[object], dst: RespConn) -> None:
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            raise translate(reply, "target", dst.endpoint)


def copy_keys(
    src: RespConn, dst: RespConn, keys: list[bytes], settings: CopySettings, *, delete_missing: bool = False
) -> BatchResult:
    """Copy *keys* (of the databases both connections have selected).

    :param delete_missing: a key gone from the source is deleted on the target (live tail).
    """
    result = BatchResult()
    if not keys:
        return result
    started_ms = int(time.time() * 1000)
    src.send(b"".join([_DUMP_PTTL % (len(k), k, len(k), k) for k in keys]))
    pending: list[bytes] = []
    pending_bytes = 0
    large: list[tuple[bytes, int | None]] = []
    for offset in range(0, len(keys), _SLICE):
        chunk = keys[offset : offset + _SLICE]
        replies = src.read(2 * len(chunk))
        for i, key in enumerate(chunk):
            payload, pttl = replies[2 * i], replies[2 * i + 1]
            for reply in (payload, pttl):
                if isinstance(reply, hiredis.ReplyError):
                    raise translate(reply, "source", src.endpoint)
            if payload is None or pttl == -2:
                if delete_missing:
                    pending.append(_delete(key))
                    result.deleted += 1
                else:
                    result.vanished += 1
                continue
            expire_at = 0 if pttl < 0 else started_ms + int(pttl)
            if not settings.restore_compatible or len(payload) > settings.max_restore_bytes:
                large.append((key, expire_at or None))
                continue
            pending.append(_restore(key, payload, expire_at))
            pending_bytes += len(payload)
            result.copied += 1
            result.payload_bytes += len(payload)
        if pending_bytes >= settings.inflight_bytes:
            _check(dst.pipeline(pending), dst)
            pending, pending_bytes = [], 0
    _check(dst.pipeline(pending), dst)
    crashpoint("redis-batch")
    for key, large_expire_at in large:
        if copy_by_elements(src, dst, key, large_expire_at):
            result.by_elements += 1
            result.copied += 1
        elif delete_missing:
            dst.call("DEL", key)
            result.deleted += 1
        else:
            result.vanished += 1
    return result
