"""AWS clients for the runner (ECS, CloudWatch Logs, Secrets Manager), and the one place their botocore
errors become ferry's.

Credentials come from the default chain (``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``…, an instance role), never
from ferry's options. Every error is one :class:`~migration.errors.RunnerError` line saying what was asked
of which service; botocore's own text is redacted and cut to its first line.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from migration.errors import FerryError, RunnerError
from migration.redact import redact

__all__ = ["AWS_ENDPOINT_ENV", "aws_client", "aws_errors", "endpoint_from_env", "error_code"]

#: An endpoint that stands for every AWS service ferry's runner calls (a moto server, in tests).
AWS_ENDPOINT_ENV = "FERRY_AWS_ENDPOINT_URL"

_NO_CREDENTIALS = (
    "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role "
    "gives them"
)


def endpoint_from_env() -> str | None:
    """The endpoint :data:`AWS_ENDPOINT_ENV` names, if any."""
    return os.environ.get(AWS_ENDPOINT_ENV) or None


@functools.cache
def _session() -> Any:
    # botocore alone: boto3 would load s3transfer and its resources model, none of which the runner uses.
    import botocore.session

    return botocore.session.get_session()


def aws_client(service: str, region: str, endpoint_url: str | None = None) -> Any:
    """A botocore client of *service* in *region*.

    :param service: ``ecs``, ``logs``, ``secretsmanager``.
    :param endpoint_url: instead of AWS's own endpoint (a moto server).
    :raises RunnerError: an endpoint that is not an http(s) URL, or a client botocore cannot make.
    """
    if endpoint_url is not None:
        parts = urlsplit(endpoint_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RunnerError(f"AWS endpoint {endpoint_url!r} is not an http(s):// URL")
    import botocore.config
    import botocore.exceptions

    config = botocore.config.Config(
        region_name=region,
        # Standard mode retries throttling (a wait polls), yet a dead endpoint fails within seconds.
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=10,
        read_timeout=60,
    )
    try:
        client: Any = _session().create_client(service, endpoint_url=endpoint_url, config=config)
    except (ValueError, botocore.exceptions.BotoCoreError) as exc:
        raise RunnerError(f"cannot set up the {service} client: {_first_line(exc)}") from None
    return client


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ``ClientError`` (``ResourceNotFoundException``), else ``""``."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _first_line(exc: BaseException) -> str:
    # botocore's messages run over lines and may quote a request; one line, redacted, is all we say.
    return redact(" ".join(str(exc).split()))


def translate(exc: BaseException, doing: str) -> FerryError:
    """*exc* as one line: ``<doing>: <what went wrong>``.

    :param doing: what was asked, for people: ``ECS RunTask (copy) in cluster arn:…``.
    """
    import botocore.exceptions

    if isinstance(exc, FerryError):
        return exc
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return RunnerError(f"{doing}: {_NO_CREDENTIALS}")
    if isinstance(exc, botocore.exceptions.ProfileNotFound):
        return RunnerError(f"{doing}: {_first_line(exc)}")
    if isinstance(exc, botocore.exceptions.EndpointConnectionError | botocore.exceptions.ConnectionError):
        return RunnerError(f"{doing}: cannot reach AWS: {_first_line(exc)}")
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "")) or "error"
        message = redact(" ".join(str(error.get("Message", "")).split()))
        if code in ("AccessDenied", "AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
                    "ExpiredTokenException"):  # fmt: skip
            return RunnerError(f"{doing}: access denied ({code}): {message} (check the AWS credentials in use)")
        return RunnerError(f"{doing}: {code}: {message}" if message else f"{doing}: {code}")
    return RunnerError(f"{doing}: {_first_line(exc)}")


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """Botocore's errors inside the block, raised as one :class:`RunnerError` line (:func:`translate`)."""
    import botocore.exceptions

    try:
        yield
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        raise translate(exc, doing) from exc
