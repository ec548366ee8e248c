"""The whole target for one stack: components wired together, and the stack's outputs."""

from __future__ import annotations

from collections.abc import Mapping

import pulumi

from stacks.cache import Cache, CacheArgs
from stacks.config import StackConfig
from stacks.cutover import Cutover, CutoverArgs, SwitchedAddon
from stacks.database import Database, DatabaseArgs
from stacks.network import Network, NetworkArgs
from stacks.runner import Runner, RunnerArgs
from stacks.secrets import RunnerSecrets, RunnerSecretsArgs
from stacks.storage import Storage, StorageArgs

__all__ = ["Target", "declare"]


class Target:
    """The components one stack declares (kept for tests and for readers of the program)."""

    def __init__(
        self,
        network: Network,
        database: Database,
        storage: Storage | None,
        cache: Cache | None,
        cutover: Cutover,
        runner: tuple[Runner, RunnerSecrets] | None = None,
        cutovers: list[Cutover] | None = None,
    ) -> None:
        self.network, self.database, self.storage, self.cache, self.cutover = network, database, storage, cache, cutover
        self.runner = runner
        #: One per move (``ferry:moves``), in their order; the stack's one cutover otherwise.
        self.cutovers = cutovers or [cutover]


def declare(config: StackConfig) -> Target:
    """Declare the target and export its outputs.

    :param config: the validated stack configuration.
    """
    prefix = f"{config.app}-{config.stack}"
    tags = {"app": config.app, "environment": config.stack, "managed-by": "ferry", **config.tags}

    reach = config.reach
    network = Network(
        "network",
        NetworkArgs(
            prefix=prefix,
            config=config.network,
            tags=tags,
            public_cidrs=reach.cidrs if reach.public else (),
            runner_egress=config.runner is not None,
        ),
    )
    database = Database(
        "database",
        DatabaseArgs(
            prefix=prefix,
            config=config.database,
            loading=config.migration.loading,
            subnet_group_name=network.db_subnet_group_name,
            security_group_ids=[network.database_security_group_id],
            tags=tags,
            publicly_accessible=reach.public,
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

    # Buckets that stay where they are keep the app's variables as they are.
    bucket_vars = storage.switched_vars(config.aws_region) if storage is not None and config.migration.s3 else {}
    cutovers = _cutovers(config, database, cache, bucket_vars)

    runner = _runner(config, prefix, tags, network, database, storage, cache) if config.runner else None

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
    pulumi.export("databaseReplicaEndpoints", database.replica_endpoints)  # none until settled
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
    if runner is not None:
        _export_runner(network, *runner)
    return Target(network, database, storage, cache, cutovers[0], runner, cutovers)


def _cutovers(
    config: StackConfig, database: Database, cache: Cache | None, bucket_vars: Mapping[str, pulumi.Input[str]]
) -> list[Cutover]:
    """The Heroku side of each move's switch, each at its own step (``ferry:moves[i].cutover``); the stack's one
    (``ferry:cutover``) without moves.

    :param bucket_vars: the moved buckets' variables: switched with the move that has ``s3``.
    """
    cutovers = []
    for view in [config.for_move(name) for name in config.move_names()] or [config]:
        new_urls: dict[str, pulumi.Input[str]] = {}
        if view.migration.postgres:
            roles = database.roles[view.database.databases[0]]
            new_urls[view.heroku.database_config_var] = roles.url_for(config.migration.app_role)
        if cache is not None:
            new_urls[view.heroku.redis_config_var] = cache.url
        switched = [SwitchedAddon(move, url=new_urls[move.config_var]) for move in view.moved_addons()]
        switched_vars = dict(bucket_vars) if view.migration.s3 else {}
        if (view.move is None or view.migration.postgres) and view.database.databases[0] == config.database.databases[
            0
        ]:
            switched_vars |= database.replica_vars  # the first database's replica, once settled, with its app
        cutovers.append(
            Cutover(
                "cutover" if view.move is None else f"cutover-{view.move}",
                CutoverArgs(app=view.heroku.app, state=view.cutover, addons=switched, switched_vars=switched_vars),
            )
        )
    return cutovers


def _runner(
    config: StackConfig,
    prefix: str,
    tags: dict[str, str],
    network: Network,
    database: Database,
    storage: Storage | None,
    cache: Cache | None,
) -> tuple[Runner, RunnerSecrets]:
    """The runner's secrets and task, and the stores' security groups opened to it.

    :param config: the stack configuration (with ``runner`` set). :param prefix: resource name prefix.
    :param tags: every resource's tags. :param network: where the task runs and whose groups admit it.
    :param database: whose owner URL the task reads. :param storage: the buckets it copies into, if any.
    :param cache: whose URL it reads, if there is a cache.
    """
    assert config.runner is not None  # the caller's condition
    primary_roles = database.roles[config.database.databases[0]]
    known = {
        "FERRY_TARGET_DATABASE_URL": primary_roles.owner_url,
        "FERRY_TARGET_APP_DATABASE_URL": primary_roles.url_for(config.migration.app_role),
    }
    if cache is not None:
        known["FERRY_TARGET_REDIS_URL"] = cache.url
    secrets = RunnerSecrets(
        "runner-secrets",
        RunnerSecretsArgs(app=config.app, stack=config.stack, secrets=config.runner_secrets(), known=known, tags=tags),
    )
    runner = Runner(
        "runner",
        RunnerArgs(
            prefix=prefix,
            stack=config.stack,
            region=config.aws_region,
            config=config.runner,
            vpc_id=network.vpc_id,
            secret_arns=secrets.arns,
            bucket_arns=list(storage.bucket_arns.values()) if storage is not None else [],
            # The old Redis is Heroku's whenever Redis moves (the target's is the stack's own cache).
            heroku_redis=config.migration.redis,
            tags=tags,
        ),
    )
    network.admit_group("runner", runner.security_group_id, cache=cache is not None)
    return runner, secrets


def _export_runner(network: Network, runner: Runner, secrets: RunnerSecrets) -> None:
    """What ``ferry run --runner ecs`` needs to start a task: where, as what, and the secrets it reads.

    :param network: its private subnets. :param runner: the task. :param secrets: the secrets it reads.
    """
    pulumi.export("runnerCluster", runner.cluster_arn)
    pulumi.export("runnerTaskDefinition", runner.task_definition_arn)
    pulumi.export("runnerSubnets", network.private_subnet_ids)
    pulumi.export("runnerSecurityGroup", runner.security_group_id)
    pulumi.export("runnerRepositoryUrl", runner.repository_url)
    pulumi.export("runnerLogGroup", runner.log_group_name)
    pulumi.export("runnerSecrets", secrets.arns)
    pulumi.export("stateBucket", runner.state_bucket_name)
