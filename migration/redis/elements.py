"""Copying one key element by element, for values too large for one RESTORE or a target
too old for the source's DUMP format. Written under a temporary name, then renamed, so
the key appears whole; its expiry is set after."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migration.crashpoints import crashpoint
from migration.errors import DatabaseError
from migration.redis.connection import RespConn, encode
from migration.redis.info import reply_map, stream_full

__all__ = ["copy_by_elements"]

_CHUNK = 1000
_TEMP_PREFIX = b"__ferry_tmp__:"
_TEMP_GROUP = "__ferry_tmp__"


def _scan(src: RespConn, command: str, key: bytes) -> Any:
    cursor = b"0"
    while True:
        cursor, items = src.call(command, key, cursor, "COUNT", _CHUNK)
        yield list(items)
        if cursor == b"0":
            return


def _copy_hash(src: RespConn, dst: RespConn, key: bytes, temp: bytes) -> None:
    for items in _scan(src, "HSCAN", key):
        if items:
            dst.call("HSET", temp, *items)


def _copy_set(src: RespConn, dst: RespConn, key: bytes, temp: bytes) -> None:
    for items in _scan(src, "SSCAN", key):
        if items:
            dst.call("SADD", temp, *items)


def _copy_zset(src: RespConn, dst: RespConn, key: bytes, temp: bytes) -> None:
    for items in _scan(src, "ZSCAN", key):
        # ZSCAN gives member, score; ZADD wants score, member.
        swapped = [x for member, score in zip(items[::2], items[1::2], strict=True) for x in (score, member)]
        if swapped:
            dst.call("ZADD", temp, *swapped)


def _copy_list(src: RespConn, dst: RespConn, key: bytes, temp: bytes) -> None:
    start = 0
    while True:
        items = src.call("LRANGE", key, start, start + _CHUNK - 1)
        if not items:
            return
        dst.call("RPUSH", temp, *items)
        start += len(items)


def _copy_string(src: RespConn, dst: RespConn, key: bytes, temp: bytes) -> None:
    chunk = 1 << 20
    offset = 0
    dst.call("SET", temp, b"")
    while True:
        data = src.call("GETRANGE", key, offset, offset + chunk - 1)
        if not data:
            return
        dst.call("APPEND", temp, data)
        offset += len(data)


def _copy_stream(src: RespConn, dst: RespConn, key: bytes, temp: bytes) -> None:
    last = b"-"
    while True:
        entries = src.call("XRANGE", key, last, "+", "COUNT", _CHUNK)
        if last != b"-":
            entries = entries[1:]  # XRANGE is inclusive: the first one is already copied
        if not entries:
            break
        for entry_id, fields in entries:
            dst.call("XADD", temp, entry_id, *fields)
        last = entries[-1][0]
    try:
        full = stream_full(src, key)
    except DatabaseError:  # before Redis 6.0: the groups, without what is pending
        for group in src.call("XINFO", "GROUPS", key):
            info = reply_map(group)
            dst.call("XGROUP", "CREATE", temp, info[b"name"], info[b"last-delivered-id"], "MKSTREAM")
        return
    # An empty stream (trimmed, every entry deleted, made by MKSTREAM) has no entry to make it exist.
    dst.call("XGROUP", "CREATE", temp, _TEMP_GROUP, "$", "MKSTREAM")
    dst.call("XGROUP", "DESTROY", temp, _TEMP_GROUP)
    # Later XADD * ids go on from the same place (and Redis 7's counts, where the target has them).
    _newer_or_not(dst, ("XSETID", temp, full[b"last-generated-id"]),
                  ("ENTRIESADDED", full.get(b"entries-added"), "MAXDELETEDID", full.get(b"max-deleted-entry-id")))  # fmt: skip
    for group in map(reply_map, full.get(b"groups") or []):
        name = group[b"name"]
        _newer_or_not(dst, ("XGROUP", "CREATE", temp, name, group[b"last-delivered-id"]),
                      ("ENTRIESREAD", group.get(b"entries-read")))  # fmt: skip
        for consumer in map(reply_map, group[b"consumers"]):
            dst.call("XGROUP", "CREATECONSUMER", temp, name, consumer[b"name"])
        for entry_id, consumer, delivered_at, deliveries in group[b"pending"]:
            # Pending again for the same consumer, delivered as often and when it was.
            dst.call("XCLAIM", temp, name, consumer, 0, entry_id, "TIME", delivered_at, "RETRYCOUNT", deliveries,
                     "FORCE", "JUSTID")  # fmt: skip


def _newer_or_not(dst: RespConn, command: tuple[Any, ...], newer: tuple[Any, ...]) -> None:
    """*command* with Redis 7's *newer* options where the source gave them and the target takes them."""
    if all(value is not None for value in newer[1::2]):
        try:
            dst.call(*command, *newer)
            return
        except DatabaseError:
            pass  # an older target: without them
    dst.call(*command)


_COPIERS: dict[bytes, Callable[[RespConn, RespConn, bytes, bytes], None]] = {
    b"hash": _copy_hash,
    b"set": _copy_set,
    b"zset": _copy_zset,
    b"list": _copy_list,
    b"string": _copy_string,
    b"stream": _copy_stream,
}


def remove_leftovers(dst: RespConn, batch: int = 1000) -> int:
    """Delete temporary keys a killed copy left on the target (in the selected database)."""
    removed, cursor = 0, b"0"
    pattern = _TEMP_PREFIX + b"*"  # no glob character in the prefix
    while True:
        cursor, keys = dst.call("SCAN", cursor, "MATCH", pattern, "COUNT", batch)
        keys = [k for k in keys if k.startswith(_TEMP_PREFIX)]
        if keys:
            removed += int(dst.call("DEL", *keys))
        if cursor == b"0":
            return removed


def copy_by_elements(src: RespConn, dst: RespConn, key: bytes, expire_at_ms: int | None) -> bool:
    """Copy *key* with ordinary commands; ``False`` when it vanished meanwhile.

    A stream keeps its last id, its consumer groups their last-delivered id, consumers and pending
    entries (from Redis 6.0 on; an entry deleted while pending cannot be pending again).
    """
    kind = src.call("TYPE", key)
    if kind == b"none":
        return False
    copier = _COPIERS.get(kind)
    if copier is None:
        raise DatabaseError(f"cannot copy key of type {kind.decode()} element by element", side="source")
    temp = _TEMP_PREFIX + key
    dst.call("DEL", temp)
    copier(src, dst, key, temp)
    crashpoint("redis-elements")
    if not dst.call("EXISTS", temp):
        dst.call("DEL", key)
        return True
    commands = [encode("RENAME", temp, key)]
    if expire_at_ms is not None:
        commands.append(encode("PEXPIREAT", key, expire_at_ms))
    dst.pipeline(commands)
    return True
