"""S3 clients per side, and the one place botocore errors become ferry errors."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import botocore.config
import botocore.exceptions
import botocore.session

from migration.errors import (
    AuthenticationError,
    ConnectError,
    DatabaseError,
    FerryError,
    HostUnreachableError,
    InvalidURLError,
    PreconditionError,
    Side,
    UsageError,
)
from migration.redact import redact, register_secret
from migration.s3.fastlist import FastListingParserFactory

__all__ = ["S3Location", "S3Side", "parse_location", "s3_errors"]


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix``; *prefix* is empty or ends with ``/``-free text as given."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


_BUCKET = re.compile(r"^[a-zA-Z0-9.\-_]{1,255}$")  # what botocore accepts (AWS itself is stricter)


def parse_location(url: str, side: Side) -> S3Location:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidURLError(f"expected s3://BUCKET[/PREFIX], got {url!r}", side=side) from None
    if parts.scheme != "s3" or not parts.netloc:
        raise InvalidURLError(f"expected s3://BUCKET[/PREFIX], got {url!r}", side=side)
    if not _BUCKET.match(parts.netloc):
        raise InvalidURLError(f"{parts.netloc!r} is not a bucket name (letters, digits, '.', '-', '_')", side=side)
    return S3Location(parts.netloc, parts.path.lstrip("/"))


@dataclass(frozen=True)
class S3Side:
    """Credentials and addressing for one side. Keys come from the environment only
    (``FERRY_S3_SOURCE_ACCESS_KEY_ID`` …), never from the command line.
    """

    side: Side
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(
        cls, side: Side, profile: str | None = None, region: str | None = None, endpoint_url: str | None = None
    ) -> S3Side:
        """The side as given, anything not given read from ``FERRY_S3_<SIDE>_PROFILE``, ``_REGION``,
        ``_ENDPOINT_URL``; keys always from ``FERRY_S3_<SIDE>_ACCESS_KEY_ID`` and friends."""
        prefix = f"FERRY_S3_{side.upper()}_"
        secret = os.environ.get(prefix + "SECRET_ACCESS_KEY")
        token = os.environ.get(prefix + "SESSION_TOKEN")
        register_secret(secret)
        register_secret(token)
        return cls(
            side,
            profile or os.environ.get(prefix + "PROFILE"),
            region or os.environ.get(prefix + "REGION"),
            endpoint_url or os.environ.get(prefix + "ENDPOINT_URL"),
            os.environ.get(prefix + "ACCESS_KEY_ID"),
            secret,
            token,
        )

    def identity(self) -> tuple[str | None, ...]:
        """Two sides with the same identity can copy server-side."""
        return (self.profile, self.endpoint_url, self.access_key_id, self.secret_access_key)

    def client(self, max_pool: int = 32) -> Any:
        """A botocore S3 client for this side.

        :raises UsageError: for an endpoint URL that is not one, or a profile that does not exist.
        """
        if self.endpoint_url is not None:
            parts = urlsplit(self.endpoint_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UsageError(
                    f"--{self.side}-endpoint-url {self.endpoint_url!r} is not an http(s):// URL", side=self.side
                )
        try:
            return self._client(max_pool)
        except botocore.exceptions.ProfileNotFound:
            raise UsageError(f"--{self.side}-profile {self.profile}: no such AWS profile", side=self.side) from None
        except (ValueError, botocore.exceptions.BotoCoreError) as exc:
            raise UsageError(f"cannot set up the S3 client: {redact(str(exc))}", side=self.side) from None

    def _client(self, max_pool: int) -> Any:
        session = _session(self.profile)
        config = botocore.config.Config(
            region_name=self.region,
            retries={"mode": "standard", "max_attempts": 5},
            max_pool_connections=max_pool,
            connect_timeout=10,
            read_timeout=120,
        )
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            config=config,
        )


@functools.cache
def _session(profile: str | None) -> Any:
    """One botocore session per profile: a second side's client reuses the loaded S3 model."""
    # botocore directly: boto3 would import s3transfer and add a tenth of a second to
    # every run, which is most of an unchanged re-run.
    session = botocore.session.get_session()
    if profile:
        session.set_config_variable("profile", profile)
    # Listings of a million keys spend most of their client time in botocore's parser:
    # listing pages get a flat, faster one (fastlist.py); timestamps, which the sync never
    # reads, stay the strings S3 sent.
    factory = FastListingParserFactory()
    factory.set_parser_defaults(timestamp_parser=str)
    session.register_component("response_parser_factory", factory)
    return session


def translate(exc: BaseException, side: Side, bucket: str) -> FerryError:
    """One line naming the side and the bucket."""
    if isinstance(exc, FerryError):
        return exc
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return HostUnreachableError(f"cannot reach the S3 endpoint for bucket {bucket}: {redact(str(exc))}", side=side)
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return AuthenticationError(f"no credentials for bucket {bucket}", side=side)
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return AuthenticationError(redact(str(exc)), side=side)
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = redact(str(error.get("Message", "")) or code)
        if code in ("NoSuchBucket", "404") and "Key" not in error:
            return PreconditionError(f"bucket {bucket} does not exist", side=side)
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"):
            return AuthenticationError(f"access denied to bucket {bucket} ({code}): {message}", side=side)
        if code in ("PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException", "301"):
            region = error.get("Region") or exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get(
                "x-amz-bucket-region"
            )
            hint = f"; it is in {region}" if region else ""
            return ConnectError(f"bucket {bucket} is not in the region asked for{hint} (--{side}-region)", side=side)
        return DatabaseError(f"bucket {bucket}: {code}: {message}", side=side)
    first_line = " ".join(str(exc).split("\n")[:2]).strip()  # botocore's messages run over lines
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return ConnectError(f"bucket {bucket}: {redact(first_line)}", side=side)
    return DatabaseError(f"bucket {bucket}: {redact(first_line)}", side=side)


@contextmanager
def s3_errors(side: Side, bucket: str) -> Iterator[None]:
    try:
        yield
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise translate(exc, side, bucket) from exc
