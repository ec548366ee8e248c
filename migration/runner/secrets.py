"""Filling the runner's secrets that only a person knows (``ferry secrets set``).

``pulumi up`` creates every secret the runner's task reads (:data:`~migration.runnerconfig.RUNNER_SECRETS`) and
writes those it knows itself (the target's URLs); the Heroku API key and the old buckets' key pair are a
person's to give. Their values go from the caller's environment or a hidden prompt straight into
``PutSecretValue``: never into a file, a log line, an error or a command line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import botocore.exceptions

from migration.errors import RunnerError, UsageError
from migration.redact import register_secret
from migration.runner.aws import aws_client, aws_errors, error_code
from migration.runnerconfig import RunnerSecret, secret_name
from migration.stackconfig import StackConfig

__all__ = ["PersonSecret", "person_secrets", "set_secrets"]


@dataclass(frozen=True)
class PersonSecret:
    """One secret a person fills on one stack.

    :param secret: which of the runner's secrets.
    :param name: its name in Secrets Manager (:func:`~migration.runnerconfig.secret_name`).
    """

    secret: RunnerSecret
    name: str

    @property
    def env(self) -> str:
        """The environment variable the task reads it as (and ``--from-env`` reads it from)."""
        return self.secret.env


def person_secrets(config: StackConfig) -> list[PersonSecret]:
    """The secrets a person fills on the stack *config* describes, in :data:`RUNNER_SECRETS`' order.

    :raises UsageError: the stack has no runner (``ferry:runner``), so nothing would read them.
    """
    if config.runner is None:
        raise UsageError(f"stack {config.stack} has no ferry:runner: no task reads these secrets (set ferry:runner "
                         f"in Pulumi.{config.stack}.yaml and run `pulumi up -s {config.stack}`)")  # fmt: skip
    return [
        PersonSecret(secret, secret_name(config.app, config.stack, secret))
        for secret in config.runner_secrets()
        if secret.filled_by == "person"
    ]


def set_secrets(
    config: StackConfig, values: Mapping[str, str], *, endpoint_url: str | None = None
) -> list[PersonSecret]:
    """Write each of the stack's :func:`person_secrets` with its value from *values*; those written.

    Every secret is checked to exist before any is written, so a stack not brought up changes nothing.

    :param values: environment variable name (``HEROKU_API_KEY``) → the value; one for each secret.
    :param endpoint_url: Secrets Manager's endpoint instead of AWS's (a moto server).
    :raises UsageError: a value is missing or empty (it names the variable, never a value).
    :raises RunnerError: a secret does not exist (``pulumi up`` creates it), or Secrets Manager failed.
    """
    wanted = person_secrets(config)
    for item in wanted:
        value = values.get(item.env, "")
        if not value.strip():
            raise UsageError(f"no value for {item.env} ({item.secret.about})")
        register_secret(value)
        if value != value.strip() or "\n" in value or "\r" in value:
            # A key or URL is one word: a pasted line break or space would fail the task much later.
            raise UsageError(f"the value for {item.env} has spaces or line breaks around or in it: give it bare")
    client = aws_client("secretsmanager", config.aws_region, endpoint_url)
    for item in wanted:
        with aws_errors(f"Secrets Manager DescribeSecret {item.name}"):
            try:
                client.describe_secret(SecretId=item.name)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    raise RunnerError(f"secret {item.name} does not exist in {config.aws_region}: "
                                      f"`pulumi up -s {config.stack}` creates it") from None  # fmt: skip
                raise
    for item in wanted:
        with aws_errors(f"Secrets Manager PutSecretValue {item.name}"):
            client.put_secret_value(SecretId=item.name, SecretString=values[item.env])
    return wanted
