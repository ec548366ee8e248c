"""The whole target for one stack: components wired together, and the stack's outputs."""

from __future__ import annotations

import pulumi

from stacks.cache import Cache, CacheArgs
from stacks.config import StackConfig
from stacks.cutover import Cutover, CutoverArgs, SwitchedAddon
from stacks.database import Database, DatabaseArgs
from stacks.network import Network, NetworkArgs
from stacks.storage import Storage, StorageArgs

__all__ = ["Target", "declare"]


class Target:
    """The components one stack declares (kept for tests and for readers of the program)."""

    def __init__(
        self, network: Network, database: Database, storage: Storage | None, cache: Cache | None, cutover: Cutover
    ) -> None:
        self.network, self.database, self.storage, self.cache, self.cutover = network, database, storage, cache, cutover


def declare(config: StackConfig) -> Target:
    """Declare the target and export its outputs.

    :param config: the validated stack configuration.
    """
    prefix = f"{config.app}-{config.stack}"
    tags = {"app": config.app, "environment": config.stack, "managed-by": "ferry", **config.tags}

    network = Network("network", NetworkArgs(prefix=prefix, config=config.network, tags=tags))
    database = Database(
        "database",
        DatabaseArgs(
            prefix=prefix,
            config=config.database,
            loading=config.migration.loading,
            subnet_group_name=network.db_subnet_group_name,
            security_group_ids=[network.database_security_group_id],
            tags=tags,
        ),
    )
    storage = (
        Storage("storage", StorageArgs(app=config.app, stack=config.stack, config=config.storage, tags=tags))
        if config.storage
        else None
    )
    cache = (
        Cache(
            "cache",
            CacheArgs(
                prefix=prefix,
                stack=config.stack,
                config=config.cache,
                subnet_group_name=network.cache_subnet_group_name,
                security_group_ids=[network.cache_security_group_id],
                tags=tags,
                keyspace_notifications=config.migration.redis and config.migration.follows_back,
            ),
        )
        if config.cache
        else None
    )

    primary = database.roles[config.database.databases[0]]
    new_urls = {"DATABASE": primary.app_url if config.migration.app_role == "app" else primary.owner_url}
    if cache is not None:
        new_urls["REDIS"] = cache.url
    switched = [SwitchedAddon(move, url=new_urls[move.attachment]) for move in config.moved_addons()]
    # Buckets that stay where they are keep the app's variables as they are.
    bucket_vars = storage.switched_vars(config.aws_region) if storage is not None and config.migration.s3 else {}
    cutover = Cutover(
        "cutover",
        CutoverArgs(app=config.heroku.app, state=config.cutover, addons=switched, switched_vars=bucket_vars),
    )

    pulumi.export("region", config.aws_region)
    pulumi.export("cutover", config.cutover)
    pulumi.export("vpcId", network.vpc_id)
    pulumi.export("peeringConnectionId", network.peering_connection_id)
    pulumi.export("databaseEndpoint", database.address)
    pulumi.export("databasePort", database.port)
    pulumi.export("databaseNames", list(database.roles))
    pulumi.export(
        "databaseRoles",
        {
            db: {"owner": roles.owner, "app": roles.app, "readonly": roles.readonly}
            for db, roles in database.roles.items()
        },
    )
    pulumi.export("databaseUrls", {db: roles.app_url for db, roles in database.roles.items()})
    pulumi.export("databaseOwnerUrls", {db: roles.owner_url for db, roles in database.roles.items()})
    pulumi.export("databaseReadonlyUrls", {db: roles.readonly_url for db, roles in database.roles.items()})
    if storage is not None:
        pulumi.export("bucketNames", storage.bucket_names)
        pulumi.export("bucketArns", storage.bucket_arns)
        pulumi.export("appPolicyArn", storage.policy_arn)
        if storage.access_key_id is not None and storage.secret_access_key is not None:
            pulumi.export("appAccessKeyId", storage.access_key_id)
            pulumi.export("appSecretAccessKey", storage.secret_access_key)
    if cache is not None:
        pulumi.export("redisEndpoint", cache.primary_endpoint)
        pulumi.export("redisPort", cache.port)
        pulumi.export("redisUrl", cache.url)
    return Target(network, database, storage, cache, cutover)
