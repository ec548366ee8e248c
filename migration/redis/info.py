"""Reading what a Redis server says about itself: INFO sections, keyspace, config that may be refused."""

from __future__ import annotations

from typing import Any

import hiredis

from migration.redis.connection import RespConn

__all__ = ["client_list", "config_get", "info", "keyspace", "reply_map", "stream_full", "version"]


def info(conn: RespConn, section: str = "everything") -> dict[str, str]:
    text = conn.call("INFO", section)
    result: dict[str, str] = {}
    for line in (text.decode() if isinstance(text, bytes) else str(text)).splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            result[key] = value.strip()
    return result


def client_list(conn: RespConn, *kind: str) -> list[dict[str, str]]:
    """``CLIENT LIST`` (``*kind``: e.g. ``TYPE normal``), one ``field → value`` map per client."""
    reply = conn.call("CLIENT", "LIST", *kind)
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    return [dict(item.split("=", 1) for item in line.split() if "=" in item) for line in text.splitlines()]


def keyspace(conn: RespConn) -> dict[int, int]:
    """``{db: keys}`` for every database that holds keys."""
    dbs: dict[int, int] = {}
    for key, value in info(conn, "keyspace").items():
        if key.startswith("db"):
            fields = dict(item.split("=", 1) for item in value.split(","))
            dbs[int(key[2:])] = int(fields.get("keys", "0"))
    return dbs


def version(conn: RespConn) -> tuple[int, ...]:
    raw = info(conn, "server").get("redis_version", "0")
    return tuple(int(p) for p in raw.split(".") if p.isdigit())


def config_get(conn: RespConn, name: str) -> str | None:
    """A config value, or ``None`` where CONFIG is refused (Heroku, ElastiCache)."""
    conn.send(b"*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(name), name.encode()))
    reply: Any = conn.read(1)[0]
    if isinstance(reply, hiredis.ReplyError) or not reply:
        return None
    values = list(reply)
    return values[1].decode() if len(values) >= 2 else None


def reply_map(flat: list[Any]) -> dict[bytes, Any]:
    """A RESP2 reply of alternating names and values (``XINFO``, ``CLIENT TRACKINGINFO``) as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def stream_full(conn: RespConn, key: bytes) -> dict[bytes, Any]:
    """``XINFO STREAM key FULL COUNT 0`` (Redis 6.0+): every entry, group, consumer and pending entry."""
    return reply_map(conn.call("XINFO", "STREAM", key, "FULL", "COUNT", 0))
