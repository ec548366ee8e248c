"""Cache: an ElastiCache Redis replication group, encrypted at rest and in transit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from stacks.config import CacheConfig
from stacks.network import REDIS_PORT

__all__ = ["Cache", "CacheArgs"]


@dataclass(frozen=True)
class CacheArgs:
    """:param stack: the stack name (automatic failover defaults off on ci)."""

    prefix: str
    stack: str
    config: CacheConfig
    subnet_group_name: pulumi.Input[str]
    security_group_ids: Sequence[pulumi.Input[str]]
    tags: Mapping[str, str]
    #: Keyspace notifications on (``notify-keyspace-events KEA``): the live copy that follows the cache back
    #: into the old Redis after the switch learns of every write from them.
    keyspace_notifications: bool = False


class Cache(pulumi.ComponentResource):
    """Redis with a generated AUTH token (secret), optionally seeded from an RDB file in S3."""

    primary_endpoint: pulumi.Output[str]
    port: pulumi.Output[int]
    url: pulumi.Output[str]

    def __init__(self, name: str, args: CacheArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ferry:stacks:Cache", name, None, opts)
        config = args.config
        child = pulumi.ResourceOptions(parent=self)
        # ElastiCache accepts 16 to 128 printable characters without '@', '"' or '/'; letters and digits are safe in URLs.
        token = random.RandomPassword(f"{name}-auth-token", length=64, special=False, opts=child)
        failover = config.failover(args.stack)
        parameters = None
        if args.keyspace_notifications:
            parameters = aws.elasticache.ParameterGroup(
                f"{name}-parameters",
                name=f"{args.prefix}-redis-notifications",
                family=_family(config.engine_version),
                description=f"{args.prefix}: keyspace notifications for ferry's follow back",
                parameters=[aws.elasticache.ParameterGroupParameterArgs(name="notify-keyspace-events", value="KEA")],
                tags=dict(args.tags),
                opts=child,
            )
        group = aws.elasticache.ReplicationGroup(
            name,
            replication_group_id=args.prefix,
            description=f"{args.prefix}: Redis moved by ferry",
            engine="redis",
            engine_version=config.engine_version,
            node_type=config.node_type,
            port=REDIS_PORT,
            num_cache_clusters=1 + config.replicas,
            automatic_failover_enabled=failover,
            multi_az_enabled=failover,
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            auth_token=token.result,
            subnet_group_name=args.subnet_group_name,
            security_group_ids=list(args.security_group_ids),
            snapshot_arns=list(config.snapshot_arns) or None,
            parameter_group_name=parameters.name if parameters is not None else None,
            snapshot_retention_limit=1 if args.stack == "ci" else 7,
            apply_immediately=True,
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["auth_token"]),
        )
        self.primary_endpoint = group.primary_endpoint_address
        self.port = group.port.apply(lambda port: port or REDIS_PORT)
        self.url = pulumi.Output.secret(
            pulumi.Output.all(token.result, group.primary_endpoint_address).apply(
                lambda parts: f"rediss://:{quote(str(parts[0]), safe='')}@{parts[1]}:{REDIS_PORT}"
            )
        )
        self.register_outputs({"primary_endpoint": self.primary_endpoint, "port": self.port, "url": self.url})


def _family(engine_version: str) -> str:
    """ElastiCache's parameter group family of a Redis version: ``redis7``, ``redis6.x``, ``redis5.0``."""
    major = engine_version.split(".")[0]
    if int(major) >= 7:
        return f"redis{major}"
    return "redis6.x" if major == "6" else f"redis{'.'.join(engine_version.split('.')[:2])}"
