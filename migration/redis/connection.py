"""A lean RESP connection (hiredis parses replies in C) and the one place Redis errors become ferry errors.

The copy moves millions of keys; a general client's per-command Python overhead would
cost more than the servers' own work, so commands are encoded here and sent in pipelines.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import hiredis

from migration.errors import (
    AuthenticationError,
    ConnectError,
    DatabaseError,
    FerryError,
    HostUnreachableError,
    Side,
)
from migration.redact import redact
from migration.redis.url import RedisEndpoint

__all__ = ["RespConn", "encode", "redis_errors"]

Arg = bytes | str | int | float


def _bytes(value: Arg) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def encode(*args: Arg) -> bytes:
    """One command in RESP."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _bytes(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def translate(exc: BaseException, side: Side, endpoint: RedisEndpoint | None = None) -> FerryError:
    """Turn a socket, TLS or Redis error into the matching :class:`FerryError`."""
    if isinstance(exc, FerryError):
        return exc
    where = f" ({endpoint.display})" if endpoint else ""
    text = redact(" ".join(str(exc).split()) or type(exc).__name__)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConnectError(
            f"TLS certificate not trusted{where}: {text}; Heroku Redis uses self-signed certificates: "
            "pass --tls-skip-verify to accept them",
            side=side,
        )
    if isinstance(exc, ssl.SSLError):
        return ConnectError(f"TLS failed{where}: {text}", side=side)
    if isinstance(exc, (ConnectionRefusedError, socket.gaierror, TimeoutError, socket.timeout)):
        return HostUnreachableError(f"cannot connect{where}: {text}", side=side)
    if isinstance(exc, OSError):
        return HostUnreachableError(f"connection failed{where}: {text}", side=side)
    upper = text.upper()
    if any(marker in upper for marker in ("WRONGPASS", "NOAUTH", "INVALID PASSWORD", "INVALID USERNAME")):
        return AuthenticationError(f"authentication failed{where}: {text}", side=side)
    return DatabaseError(text, side=side)


@contextmanager
def redis_errors(side: Side, endpoint: RedisEndpoint | None = None) -> Iterator[None]:
    """Translate socket, TLS and Redis errors raised inside the block for *side*."""
    try:
        yield
    except (OSError, hiredis.ReplyError, hiredis.ProtocolError) as exc:
        raise translate(exc, side, endpoint) from exc


#: The name every connection of ferry's gives itself (``CLIENT SETNAME``).
CLIENT_NAME = "ferry"


class RespConn:
    """One connection; ``pipeline`` sends many commands in one write and reads their replies.

    Error replies come back as ``hiredis.ReplyError`` values inside a pipeline's result;
    :meth:`call` raises them.
    """

    def __init__(self, endpoint: RedisEndpoint, db: int = 0, timeout: float = 30.0) -> None:
        self.endpoint = endpoint
        self.db = db
        with redis_errors(endpoint.side, endpoint):
            sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if endpoint.tls:
                context = ssl.create_default_context()
                if not endpoint.verify_tls:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(sock, server_hostname=endpoint.host)
        self.sock = sock
        self.reader = hiredis.Reader()
        self._buffer = bytearray(1 << 20)
        if endpoint.password:
            auth = (endpoint.username, endpoint.password) if endpoint.username else (endpoint.password,)
            self.call("AUTH", *auth)
        if db:
            self.call("SELECT", db)
        # Named, so that ferry's own connections are told from the app's (a held write refused at the follow
        # back's start must never be ferry's own); a server that refuses names loses nothing else.
        with suppress(FerryError):
            self.call("CLIENT", "SETNAME", CLIENT_NAME)

    def close(self) -> None:
        with suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RespConn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        with redis_errors(self.endpoint.side, self.endpoint):
            self.sock.sendall(data)

    def read(self, count: int) -> list[Any]:
        """Read *count* replies."""
        replies: list[Any] = []
        view = memoryview(self._buffer)
        with redis_errors(self.endpoint.side, self.endpoint):
            while len(replies) < count:
                reply = self.reader.gets()
                if reply is not False:
                    replies.append(reply)
                    continue
                received = self.sock.recv_into(view)
                if received == 0:
                    raise ConnectionResetError("the server closed the connection")
                self.reader.feed(view, 0, received)  # type: ignore[arg-type]  # any buffer works
        return replies

    def poll(self, timeout: float) -> Any:
        """One reply if it arrives within *timeout* seconds, else ``None`` (for subscriptions)."""
        reply = self.reader.gets()
        if reply is not False:
            return reply
        view = memoryview(self._buffer)
        with redis_errors(self.endpoint.side, self.endpoint):
            self.sock.settimeout(timeout)
            try:
                received = self.sock.recv_into(view)
            except TimeoutError:
                return None
            finally:
                self.sock.settimeout(None)
            if received == 0:
                raise ConnectionResetError("the server closed the connection")
            self.reader.feed(view, 0, received)  # type: ignore[arg-type]  # any buffer works
        reply = self.reader.gets()
        return None if reply is False else reply

    def pipeline(self, commands: Sequence[bytes]) -> list[Any]:
        """Send pre-encoded *commands* at once and return their replies in order."""
        if not commands:
            return []
        self.send(b"".join(commands))
        return self.read(len(commands))

    def call(self, *args: Arg) -> Any:
        """Run one command; an error reply raises."""
        self.send(encode(*args))
        reply = self.read(1)[0]
        if isinstance(reply, hiredis.ReplyError):
            raise translate(reply, self.endpoint.side, self.endpoint)
        return reply

    def select(self, db: int) -> None:
        if db != self.db:
            self.call("SELECT", db)
            self.db = db
