"""The stack file's ``ferry:reach`` (how the app reaches its new stores after the switch) and ``ferry:runner``
(ferry as a container task inside the target's network), and the secrets that task reads.

Light like :mod:`migration.stackconfig`, which checks them against the rest of the file: a target the app
could never reach is refused when the file is read, before ``pulumi up`` builds it or ``ferry run`` freezes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, field_validator, model_validator

from migration.configmodel import Model

__all__ = [
    "FARGATE_SIZES",
    "LOG_RETENTION_DAYS",
    "RUNNER_SECRETS",
    "AppReach",
    "ReachConfig",
    "RunnerConfig",
    "RunnerSecret",
    "secret_name",
]

AppReach = Literal["private-space", "vpc", "public"]

#: Fargate's task sizes: vCPU units → the memory (MiB) each allows.
FARGATE_SIZES: dict[int, range] = {
    256: range(512, 2049, 512),  # but 1536: see _fargate_size
    512: range(1024, 4097, 1024),
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
    8192: range(16384, 61441, 4096),
    16384: range(32768, 122881, 8192),
}
#: The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
                      2922, 3288, 3653)  # fmt: skip
_OPEN_TO_ALL = (ipaddress.IPv4Network("0.0.0.0/0"), ipaddress.IPv6Network("::/0"))
#: A public database admits the app's static outbound addresses: a /32 or two, a provider's small block at most.
_WIDEST_PUBLIC_PREFIX = 16


class ReachConfig(Model):
    """How the app reaches its moved stores once it is switched to them.

    :param app: ``private-space`` (a Heroku Private Space peered with the stack's VPC), ``vpc`` (the app runs
        in AWS, in a network the stack admits: a peered VPC, ``allowedCidrs`` or ``allowedSecurityGroupIds``)
        or ``public`` (a Common Runtime app: the database is made publicly accessible, TLS only, behind a
        security group that admits :attr:`cidrs` alone, with a generated 40-character password; ElastiCache
        cannot be public, so Redis stays where it is).
    :param cidrs: ``public`` only: the networks the app's requests come from (a static outbound IP add-on's
        addresses); never the whole internet.
    """

    app: AppReach
    cidrs: list[ipaddress.IPv4Network] = Field(default_factory=list)

    @field_validator("cidrs")
    @classmethod
    def _not_open(cls, cidrs: list[ipaddress.IPv4Network]) -> list[ipaddress.IPv4Network]:
        for cidr in cidrs:
            if cidr in _OPEN_TO_ALL or cidr.prefixlen < _WIDEST_PUBLIC_PREFIX:
                # A few wide blocks add up to the whole internet as surely as 0.0.0.0/0 does.
                raise ValueError(
                    f"{cidr} opens the database to far more than the app (wider than a /{_WIDEST_PUBLIC_PREFIX}): "
                    "name the app's own outbound addresses"
                )
        return cidrs

    @model_validator(mode="after")
    def _cidrs_for_public(self) -> ReachConfig:
        if self.app == "public" and not self.cidrs:
            raise ValueError(
                "app: public needs cidrs: the networks the app's requests come from (a static outbound IP add-on's)"
            )
        if self.app != "public" and self.cidrs:
            raise ValueError("cidrs is for app: public (a peered or VPC app is admitted by the network section)")
        return self

    @property
    def public(self) -> bool:
        return self.app == "public"


class RunnerConfig(Model):
    """ferry's data plane as a Fargate task in the stack's private subnets (``ferry run --runner ecs``).

    :param cpu: vCPU units (1024 = one vCPU), up to 16384. :param memory_mb: within what *cpu* allows.
    :param ephemeral_storage_gb: the task's scratch disk (21-200 GiB).
    :param log_retention_days: how long the task's log group keeps its logs.
    :param image_tag: the tag of ferry's image in the stack's ECR repository.
    """

    cpu: int = 4096
    memory_mb: int = 16384
    ephemeral_storage_gb: int = Field(default=21, ge=21, le=200)
    log_retention_days: int = 30
    image_tag: str = Field(default="latest", pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

    @model_validator(mode="after")
    def _fargate_size(self) -> RunnerConfig:
        if self.cpu not in FARGATE_SIZES:
            raise ValueError(
                f"cpu must be one of {', '.join(map(str, FARGATE_SIZES))} (Fargate's sizes), not {self.cpu}"
            )
        allowed = FARGATE_SIZES[self.cpu]
        if self.memory_mb not in allowed or (self.cpu, self.memory_mb) == (256, 1536):
            sizes = "512, 1024 or 2048" if self.cpu == 256 else (
                f"{allowed.start}-{allowed.stop - 1} MiB in steps of {allowed.step}"
            )  # fmt: skip
            raise ValueError(f"memoryMb {self.memory_mb} does not go with cpu {self.cpu}: Fargate allows {sizes}")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"logRetentionDays must be one of CloudWatch's periods ({', '.join(map(str, LOG_RETENTION_DAYS))})"
            )
        return self


@dataclass(frozen=True)
class RunnerSecret:
    """One secret the runner's task reads, as an environment variable of that name.

    :param name: its last path part in Secrets Manager (:func:`secret_name`).
    :param filled_by: ``stack`` (``pulumi up`` writes it), ``person`` (``ferry secrets set``) or ``run``
        (``ferry run`` writes it from the app's config before it starts a task that needs it).
    :param needs: the moved store it serves (``postgres``, ``redis``, ``s3``), or ``None``: always.
    """

    env: str
    name: str
    filled_by: Literal["stack", "person", "run"]
    needs: Literal["postgres", "redis", "s3"] | None
    about: str


#: Every secret the task may read. A phase task reads the source URLs from the app through the Heroku API key
#: (Heroku rotates its credentials; a copy kept here would go stale); a copy helper task (``--tasks``) has no
#: Heroku key: ``ferry run`` writes the source database's URL for it, fresh from the app, before it starts one.
RUNNER_SECRETS: tuple[RunnerSecret, ...] = (
    RunnerSecret("HEROKU_API_KEY", "heroku-api-key", "person", None, "the Heroku API key of the app's owner"),
    RunnerSecret("FERRY_SOURCE_DATABASE_URL", "source-database-url", "run", "postgres",
                 "the old database's URL, as the app has it (for the copy's helper tasks)"),
    RunnerSecret("FERRY_TARGET_DATABASE_URL", "target-database-url", "stack", "postgres",
                 "the target database's owner URL"),
    RunnerSecret("FERRY_TARGET_APP_DATABASE_URL", "target-app-database-url", "stack", "postgres",
                 "the URL the app's DATABASE_URL becomes (its role's)"),
    RunnerSecret("FERRY_TARGET_REDIS_URL", "target-redis-url", "stack", "redis", "the ElastiCache URL with its token"),
    RunnerSecret("FERRY_S3_SOURCE_ACCESS_KEY_ID", "s3-source-access-key-id", "person", "s3",
                 "the old buckets' access key id"),
    RunnerSecret("FERRY_S3_SOURCE_SECRET_ACCESS_KEY", "s3-source-secret-access-key", "person", "s3",
                 "the old buckets' secret access key"),
)  # fmt: skip


def secret_name(app: str, stack: str, secret: RunnerSecret) -> str:
    """The secret's name in Secrets Manager: ``ferry/<app>-<stack>/<name>``."""
    return f"ferry/{app}-{stack}/{secret.name}"


def reach_of(
    reach: ReachConfig | None,
    *,
    heroku_app: str,
    stack: str,
    peering_kind: str | None,
    admitted: bool,
    redis_moved: bool,
    buckets_by_role: bool,
    public_subnets: bool,
) -> ReachConfig:
    """*reach*, or the one the network implies (a peered Private Space), checked against what the app can use.

    :param admitted: the network section admits something besides the peering (CIDRs, security groups).
    :param buckets_by_role: the app reaches its buckets through an IAM role (``storage.appRole``).
    :param public_subnets: the stack creates its VPC (and public subnets with it) or names public subnets.
    :raises ValueError: the app could not reach a moved store after the switch (one line: store, app, stack).
    """
    where = f"app {heroku_app} on stack {stack}"
    if reach is None:
        if peering_kind != "heroku-space":
            raise ValueError(
                f"reach: say how {where} reaches its new stores after the switch: app: private-space (a peered "
                "Heroku Private Space), vpc (the app runs in AWS, in a network the stack admits) or public (a "
                "Common Runtime app: a TLS-only public database limited to reach.cidrs)"
            )
        reach = ReachConfig(app="private-space")
    if reach.app == "private-space" and peering_kind != "heroku-space":
        raise ValueError(f"reach.app private-space: the database would be out of reach of {where}: "
                         "network.peering must peer its Heroku Private Space (kind: heroku-space)")  # fmt: skip
    if reach.app == "vpc" and not (admitted or peering_kind == "vpc"):
        raise ValueError(f"reach.app vpc: the database would be out of reach of {where}: admit the app's network "
                         "(network.allowedCidrs, allowedSecurityGroupIds or a peering of kind vpc)")  # fmt: skip
    if buckets_by_role and reach.app != "vpc":
        raise ValueError(
            f"reach.app {reach.app}: the buckets would be out of reach of {where} (an app on Heroku has no AWS "
            "role to assume): use storage.appUser, whose key pair goes into the app's config"
        )
    if reach.public:
        if redis_moved:
            raise ValueError(
                f"reach.app public: the cache would be out of reach of {where} (ElastiCache has no public "
                "endpoint): keep Redis where it is (migration.redis: false) or run the app in a Private Space"
            )
        if not public_subnets:
            raise ValueError(f"reach.app public: the database needs public subnets to be reached by {where}: "
                             "give network.publicSubnetIds with network.vpcId")  # fmt: skip
    return reach
