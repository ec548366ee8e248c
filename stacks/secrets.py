"""The runner's secrets: one Secrets Manager secret per value its task reads as an environment variable.

The task definition names them by ARN only (ECS reads them into the task's environment as it starts), so no
secret value is ever part of it. Those the stack knows (the target's URLs) are written here; those only a
person has (the Heroku API key, the old buckets' keys) are filled by ``ferry secrets set``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from migration.runnerconfig import RunnerSecret, secret_name

__all__ = ["RunnerSecrets", "RunnerSecretsArgs"]


@dataclass(frozen=True)
class RunnerSecretsArgs:
    """:param app: the app name and :param stack: the stack name (:func:`secret_name`).
    :param secrets: the secrets to declare (``StackConfig.runner_secrets()``).
    :param known: environment variable → the value the stack knows (a Pulumi secret), for every secret
        filled by the stack among *secrets*.
    :param tags: every secret's tags (each also says who fills it).
    """

    app: str
    stack: str
    secrets: list[RunnerSecret]
    known: Mapping[str, pulumi.Output[str]]
    tags: Mapping[str, str]


class RunnerSecrets(pulumi.ComponentResource):
    """The runner's secrets, tagged, with a version for each the stack fills itself."""

    #: Environment variable → the secret's ARN (what the task definition's ``valueFrom`` names).
    arns: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: RunnerSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ferry:stacks:RunnerSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.arns = {}
        for secret in args.secrets:
            resource = aws.secretsmanager.Secret(
                f"{name}-{secret.name}",
                name=secret_name(args.app, args.stack, secret),
                description=f"ferry runner ({args.app}-{args.stack}): {secret.about}",
                # ci is torn down after each run: a secret kept for recovery would block its name the next time.
                recovery_window_in_days=0 if args.stack == "ci" else 30,
                tags={**args.tags, "filled-by": secret.filled_by},
                opts=child,
            )
            self.arns[secret.env] = resource.arn
            if secret.filled_by == "stack":
                if secret.env not in args.known:
                    raise ValueError(f"the stack fills {secret.env} but was given no value for it")
                aws.secretsmanager.SecretVersion(
                    f"{name}-{secret.name}",
                    secret_id=resource.id,
                    # Secret already (a URL with its password); the provider keeps secretString secret besides.
                    secret_string=args.known[secret.env],
                    opts=child,
                )
        self.register_outputs({"arns": self.arns})
