"""Redis URLs: ``redis://`` and ``rediss://`` (TLS), parsed and validated, passwords registered."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from migration.errors import InvalidURLError, Side
from migration.redact import register_secret

__all__ = ["RedisEndpoint", "parse_redis_pair", "parse_redis_url"]


@dataclass(frozen=True)
class RedisEndpoint:
    """One side of a Redis copy.

    :param tls: ``rediss://``.
    :param verify_tls: check the server certificate (off only when asked: Heroku presents
        self-signed certificates).
    """

    side: Side
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    verify_tls: bool = True

    @property
    def display(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"

    def without_tls_verification(self) -> RedisEndpoint:
        return RedisEndpoint(self.side, self.host, self.port, self.username, self.password, self.tls, False)


def parse_redis_url(url: str, side: Side) -> RedisEndpoint:
    """Parse a Redis URL for *side*. Every database is copied, so a path may only name database 0.

    :raises InvalidURLError: when malformed; the message never holds the password.
    """
    if not url or not url.strip():
        raise InvalidURLError("no Redis URL given", side=side)
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:  # e.g. "[::1" without its closing bracket
        raise InvalidURLError(f"malformed Redis URL: {exc}", side=side) from None
    if parts.password:
        register_secret(unquote(parts.password))
    if parts.scheme not in ("redis", "rediss"):
        raise InvalidURLError(f"URL scheme must be redis:// or rediss://, not {parts.scheme}://", side=side)
    try:
        port = parts.port or 6379
    except ValueError:
        raise InvalidURLError("URL has an invalid port", side=side) from None
    if not parts.hostname:
        raise InvalidURLError("URL names no host", side=side)
    if not 0 < port < 65536:
        raise InvalidURLError("URL has an invalid port", side=side)
    database = parts.path.strip("/")
    if database and not database.isdigit():
        raise InvalidURLError(f"URL path /{database} is not a database number", side=side)
    if database and int(database) != 0:
        raise InvalidURLError(
            f"URL names database {int(database)}, but ferry copies every database of the server: "
            f"remove /{database} from the URL",
            side=side,
        )
    query = parse_qs(parts.query)
    verify = query.get("ssl_cert_reqs", ["required"])[0] not in ("none", "CERT_NONE")
    return RedisEndpoint(
        side=side,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=parts.scheme == "rediss",
        verify_tls=verify,
    )


def parse_redis_pair(source_url: str, target_url: str, *, tls_skip_verify: bool) -> tuple[RedisEndpoint, RedisEndpoint]:
    """Both sides of a command; ``tls_skip_verify`` accepts any certificate on either."""
    source, target = parse_redis_url(source_url, "source"), parse_redis_url(target_url, "target")
    if tls_skip_verify:
        return source.without_tls_verification(), target.without_tls_verification()
    return source, target
