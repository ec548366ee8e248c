"""Is the target the very Redis server the source is? Asked before anything is written.

URLs spell one server many ways (names, addresses, ports behind a proxy), so ferry asks
the servers: ``run_id`` is a random id each Redis process draws at start. Where a server
hides it, a client name set on the source connection is looked for in the target's
``CLIENT LIST``. ferry copies every database of a server, so any two connections to one
server are the same store.
"""

from __future__ import annotations

import secrets

from migration.errors import FerryError, SameStoreError
from migration.redis.connection import RespConn
from migration.redis.info import client_list, info
from migration.redis.url import RedisEndpoint

__all__ = ["refuse_same_server", "same_server"]


def same_server(source: RespConn, target: RespConn) -> bool:
    """True when both connections reach one Redis process, whatever their URLs say."""
    source_id = info(source, "server").get("run_id")
    target_id = info(target, "server").get("run_id")
    if source_id and target_id:
        return source_id == target_id
    name = f"ferry-probe-{secrets.token_hex(8)}"
    try:
        source.call("CLIENT", "SETNAME", name)
        clients = client_list(target)
    except FerryError:
        return False  # neither run_id nor CLIENT is offered: nothing more to ask
    return any(client.get("name") == name for client in clients)


def refuse_same_server(source: RespConn, target: RespConn, endpoint: RedisEndpoint) -> None:
    """:raises SameStoreError: when the target is the source server under another spelling."""
    if same_server(source, target):
        raise SameStoreError(
            f"{endpoint.display} is the source server itself (same Redis run_id); refusing to write to the source",
            side="target",
        )
