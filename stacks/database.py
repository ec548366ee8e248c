"""Database: RDS PostgreSQL, its parameter profiles, and the databases and roles on it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pulumi
import pulumi_aws as aws
import pulumi_postgresql as postgresql
import pulumi_random as random

from stacks.config import DatabaseConfig

__all__ = ["BULK_LOAD_PARAMETERS", "Database", "DatabaseArgs", "DatabaseRoles"]

#: While ``migration.loading`` is set: faster index builds, fewer checkpoints, no fsync wait per
#: commit, no autovacuum racing the COPY. Leaving them out again restores RDS's defaults.
BULK_LOAD_PARAMETERS: Mapping[str, str] = {
    "maintenance_work_mem": "1048576",  # kB: 1 GiB
    "max_wal_size": "16384",  # MB
    "checkpoint_timeout": "1800",  # s
    "synchronous_commit": "off",
    "autovacuum": "0",
}
_ALWAYS_PARAMETERS: Mapping[str, str] = {"rds.force_ssl": "1", "log_min_duration_statement": "1000"}
_TABLE_READ_WRITE = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"]
_SEQUENCE_READ_WRITE = ["USAGE", "SELECT", "UPDATE"]


@dataclass(frozen=True)
class DatabaseArgs:
    """:param prefix: resource name prefix. :param loading: apply the bulk-load parameter profile.
    :param publicly_accessible: a Common Runtime app reaches it over the internet (``reach.app: public``): its
        subnet group must hold public subnets and its security group admit the app's addresses alone.
    """

    prefix: str
    config: DatabaseConfig
    loading: bool
    subnet_group_name: pulumi.Input[str]
    security_group_ids: Sequence[pulumi.Input[str]]
    tags: Mapping[str, str]
    publicly_accessible: bool = False


@dataclass(frozen=True)
class DatabaseRoles:
    """The three roles of one database, and a connection URL (secret) for each."""

    owner: str
    app: str
    readonly: str
    owner_url: pulumi.Output[str]
    app_url: pulumi.Output[str]
    readonly_url: pulumi.Output[str]
    #: The read-only role's URL on each read replica (the roles and their passwords replicate with the data).
    replica_readonly_urls: tuple[pulumi.Output[str], ...] = ()

    def url_for(self, app_role: str) -> pulumi.Output[str]:
        """What ``DATABASE_URL`` becomes: the app role's URL, or the owner's (``migration.appRole: owner``)."""
        return self.app_url if app_role == "app" else self.owner_url


def _watched_and_kept_current(config: DatabaseConfig, key: aws.kms.Key) -> dict[str, Any]:
    """What the instance and its replicas share: Performance Insights under the stack's key, its logs exported,
    minor versions and every change applied at once."""
    return {
        "performance_insights_enabled": config.performance_insights,
        "performance_insights_kms_key_id": key.arn if config.performance_insights else None,
        "performance_insights_retention_period": 7 if config.performance_insights else None,
        "enabled_cloudwatch_logs_exports": list(config.log_exports),
        "auto_minor_version_upgrade": True,
        "apply_immediately": True,
    }


def _password(name: str, parent: pulumi.Resource) -> random.RandomPassword:
    # Letters and digits only: the password goes into URLs and RDS refuses '/', '@', '"' and spaces.
    return random.RandomPassword(name, length=40, special=False, opts=pulumi.ResourceOptions(parent=parent))


def _url(
    user: str, password: pulumi.Output[str], host: pulumi.Output[str], port: pulumi.Output[int], db: str
) -> pulumi.Output[str]:
    url = pulumi.Output.all(password, host, port).apply(
        lambda parts: f"postgres://{user}:{quote(str(parts[0]), safe='')}@{parts[1]}:{parts[2]}/{db}?sslmode=require"
    )
    return pulumi.Output.secret(url)


class Database(pulumi.ComponentResource):
    """An encrypted RDS PostgreSQL instance, private unless a Common Runtime app must reach it, and, per
    configured database, an owner role, an app role with read-write grants and a read-only role (used to
    freeze writes at cutover). Until ``database.settled`` the instance has ``loadInstanceClass`` (if given) and
    no replica; once settled, ``instanceClass`` and ``readReplicas`` read replicas."""

    address: pulumi.Output[str]
    port: pulumi.Output[int]
    instance_arn: pulumi.Output[str]
    roles: dict[str, DatabaseRoles]
    #: Each read replica's address (none until settled).
    replica_endpoints: pulumi.Output[list[str]]
    #: What the cutover's switch sets besides the add-ons' URLs: ``replicaConfigVar`` → the first database's
    #: read-only URL on the first replica, once settled (empty otherwise).
    replica_vars: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ferry:stacks:Database", name, None, opts)
        config, tags = args.config, dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)

        key = aws.kms.Key(
            f"{name}-key",
            description=f"{args.prefix}: RDS storage, snapshots and Performance Insights",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=child,
        )
        aws.kms.Alias(f"{name}-key", name=f"alias/{args.prefix}-rds", target_key_id=key.key_id, opts=child)

        parameters = {**_ALWAYS_PARAMETERS, **(BULK_LOAD_PARAMETERS if args.loading else {})}
        parameter_group = aws.rds.ParameterGroup(
            f"{name}-parameters",
            name_prefix=f"{args.prefix}-pg{config.major_version}-",
            family=f"postgres{config.major_version}",
            # The same whatever the profile: a description is no parameter RDS can change, and a group replaced
            # by the switch's update would take effect only after a reboot nothing triggers. Updated in place,
            # the bulk-load parameters (every one of them dynamic) end at once with apply_method immediate.
            description=f"{args.prefix}: PostgreSQL parameters (ferry)",
            parameters=[
                aws.rds.ParameterGroupParameterArgs(name=param, value=value, apply_method="immediate")
                for param, value in sorted(parameters.items())
            ],
            tags=tags,
            # name_prefix: a replaced group is created beside the old one (RDS refuses to delete a group in use).
            opts=child,
        )

        master_password = _password(f"{name}-master-password", self)
        instance = aws.rds.Instance(
            name,
            identifier=args.prefix,
            engine="postgres",
            engine_version=config.engine_version,
            # The load class until settled: `settle` brings it back with a modify applied at once.
            instance_class=config.current_instance_class,
            allocated_storage=config.allocated_storage_gb,
            max_allocated_storage=config.max_allocated_storage_gb,
            storage_type="gp3",
            storage_encrypted=True,
            kms_key_id=key.arn,
            # Public only for an app that reaches no VPC; it stays TLS-only (rds.force_ssl) behind a generated
            # 40-character password and a security group admitting the app's addresses.
            publicly_accessible=args.publicly_accessible,
            multi_az=config.multi_az,
            db_subnet_group_name=args.subnet_group_name,
            vpc_security_group_ids=list(args.security_group_ids),
            parameter_group_name=parameter_group.name,
            username=config.master_username,
            password=master_password.result,
            backup_retention_period=config.backup_retention_days,
            copy_tags_to_snapshot=True,
            deletion_protection=config.deletion_protection,
            skip_final_snapshot=not config.final_snapshot,
            final_snapshot_identifier=f"{args.prefix}-final" if config.final_snapshot else None,
            **_watched_and_kept_current(config, key),
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["password"]),
        )
        self.address, self.port, self.instance_arn = instance.address, instance.port, instance.arn
        replicas = [
            _replica(f"{name}-replica-{n}", f"{args.prefix}-replica-{n}", args, instance, parameter_group, key, self)
            for n in range(1, config.declared_replicas + 1)
        ]
        self.replica_endpoints = pulumi.Output.all(*(replica.address for replica in replicas)).apply(list)

        server = postgresql.Provider(
            f"{name}-server",
            host=instance.address,
            port=instance.port,
            username=config.master_username,
            password=master_password.result,
            database="postgres",
            sslmode="require",
            superuser=False,  # RDS's master user is not a superuser
            expected_version=config.engine_version,
            connect_timeout=15,
            opts=child,
        )
        on_server = pulumi.ResourceOptions(parent=self, provider=server)
        self.roles = {db: self._database(f"{name}-{db}", db, on_server, instance, replicas) for db in config.databases}
        first = self.roles[config.databases[0]]
        self.replica_vars = (
            {config.replica_config_var: first.replica_readonly_urls[0]}
            if config.replica_config_var and first.replica_readonly_urls
            else {}
        )
        self.register_outputs(
            {
                "address": self.address,
                "port": self.port,
                "instance_arn": self.instance_arn,
                "databases": list(self.roles),
                "replica_endpoints": self.replica_endpoints,
            }
        )

    def _database(
        self,
        name: str,
        db: str,
        on_server: pulumi.ResourceOptions,
        instance: aws.rds.Instance,
        replicas: Sequence[aws.rds.Instance],
    ) -> DatabaseRoles:
        owner_name, app_name, readonly_name = f"{db}_owner", f"{db}_app", f"{db}_readonly"
        passwords = {role: _password(f"{name}-{role}-password", self) for role in ("owner", "app", "readonly")}
        owner = postgresql.Role(
            f"{name}-owner", name=owner_name, login=True, password=passwords["owner"].result, opts=on_server
        )
        app = postgresql.Role(
            f"{name}-app", name=app_name, login=True, password=passwords["app"].result, opts=on_server
        )
        readonly = postgresql.Role(
            f"{name}-readonly", name=readonly_name, login=True, password=passwords["readonly"].result, opts=on_server
        )
        database = postgresql.Database(f"{name}-database", name=db, owner=owner.name, opts=on_server)
        after_database = pulumi.ResourceOptions.merge(on_server, pulumi.ResourceOptions(depends_on=[database]))

        grants: list[tuple[str, postgresql.Role, str, list[str]]] = [
            ("app", app, "table", _TABLE_READ_WRITE),
            ("app", app, "sequence", _SEQUENCE_READ_WRITE),
            ("readonly", readonly, "table", ["SELECT"]),
            ("readonly", readonly, "sequence", ["SELECT"]),
        ]
        for label, role in (("app", app), ("readonly", readonly)):
            postgresql.Grant(
                f"{name}-{label}-connect",
                database=db,
                role=role.name,
                object_type="database",
                privileges=["CONNECT"],
                opts=after_database,
            )
            postgresql.Grant(
                f"{name}-{label}-schema",
                database=db,
                role=role.name,
                schema="public",
                object_type="schema",
                privileges=["USAGE"],
                opts=after_database,
            )
        for label, role, object_type, privileges in grants:
            postgresql.Grant(
                f"{name}-{label}-{object_type}s",
                database=db,
                role=role.name,
                schema="public",
                object_type=object_type,
                privileges=privileges,
                opts=after_database,
            )
            # Tables the owner creates later (the copy, the app's migrations) get the same grants.
            postgresql.DefaultPrivileges(
                f"{name}-{label}-future-{object_type}s",
                database=db,
                role=role.name,
                owner=owner.name,
                schema="public",
                object_type=object_type,
                privileges=privileges,
                opts=after_database,
            )
        return DatabaseRoles(
            owner=owner_name,
            app=app_name,
            readonly=readonly_name,
            owner_url=_url(owner_name, passwords["owner"].result, instance.address, instance.port, db),
            app_url=_url(app_name, passwords["app"].result, instance.address, instance.port, db),
            readonly_url=_url(readonly_name, passwords["readonly"].result, instance.address, instance.port, db),
            replica_readonly_urls=tuple(
                _url(readonly_name, passwords["readonly"].result, replica.address, replica.port, db)
                for replica in replicas
            ),
        )


def _replica(
    name: str,
    identifier: str,
    args: DatabaseArgs,
    primary: aws.rds.Instance,
    parameter_group: aws.rds.ParameterGroup,
    key: aws.kms.Key,
    parent: pulumi.Resource,
) -> aws.rds.Instance:
    """A read replica of *primary*: created after it (its identifier is an output of the primary's update, so a
    settle's class change completes first), in its subnet group (same region: RDS takes the source's when none is
    given), behind its security groups and with its parameter group; public only if the primary is."""
    config = args.config
    return aws.rds.Instance(
        name,
        identifier=identifier,
        # Same region: the source's identifier (an ARN only with a subnet group of its own, or across regions).
        replicate_source_db=primary.identifier,
        instance_class=config.replica_class,
        storage_type="gp3",
        max_allocated_storage=config.max_allocated_storage_gb,
        # Encrypted with the primary's key: a same-region replica always is, and RDS refuses a KMS key given for one
        # ("Your request does not require the KMS key parameter").
        storage_encrypted=True,
        publicly_accessible=args.publicly_accessible,
        multi_az=False,
        vpc_security_group_ids=list(args.security_group_ids),
        parameter_group_name=parameter_group.name,
        # Nothing of its own to restore: the primary's backups and final snapshot hold the data.
        backup_retention_period=0,
        skip_final_snapshot=True,
        deletion_protection=False,
        copy_tags_to_snapshot=True,
        **_watched_and_kept_current(config, key),
        tags=dict(args.tags),
        opts=pulumi.ResourceOptions(parent=parent),
    )
