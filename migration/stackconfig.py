"""Typed stack configuration: one model read from ``Pulumi.<env>.yaml``.

Light on purpose: pydantic and yaml only, neither pulumi nor the Heroku client, so the
driver (``ferry run --help`` included) reads it without loading the Pulumi program.
``stacks`` imports it from here; ``migration`` never imports ``stacks``.

The Pulumi program reads it through ``pulumi.Config`` (:func:`from_pulumi`, which sees
values set with ``pulumi config set`` too); the ``ferry`` driver reads the same file
directly (:func:`load_stack_file`). Both validate with :class:`StackConfig`, so a
misspelled or invalid key fails before any resource is declared or any data is moved,
with one line naming the key.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from migration.configmodel import Model as _Model
from migration.errors import ConfigError
from migration.moveconfig import (
    CUTOVER_STATES,
    CutoverState,
    HerokuConfig,
    MoveConfig,
    MovedAddon,
    check_moves,
    cutover_key,
    for_move,
    move_names,
)
from migration.runnerconfig import RUNNER_SECRETS, ReachConfig, RunnerConfig, RunnerSecret, reach_of
from migration.storageconfig import BucketConfig, BucketConfigVars, StorageConfig

__all__ = [
    "CUTOVER_STATES",
    "PROJECT",
    "ROLLBACK_VAR",
    "BucketConfig",
    "BucketConfigVars",
    "CacheConfig",
    "CutoverState",
    "DatabaseConfig",
    "HerokuConfig",
    "MigrationConfig",
    "MoveConfig",
    "MovedAddon",
    "NetworkConfig",
    "PeeringConfig",
    "ReachConfig",
    "RunnerConfig",
    "StackConfig",
    "StorageConfig",
    "from_pulumi",
    "load_stack_file",
    "stack_file",
]

PROJECT = "ferry"
#: The app's config variable where the switch keeps, for the rollback, the old values of those it overwrites.
ROLLBACK_VAR = "FERRY_ROLLBACK_CONFIG"
_OPEN_TO_ALL = (ipaddress.IPv4Network("0.0.0.0/0"), ipaddress.IPv6Network("::/0"))
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PeeringConfig(_Model):
    """VPC peering to where the source lives: a Heroku Private Space or another VPC."""

    kind: Literal["heroku-space", "vpc"]
    #: Heroku Private Space name (kind ``heroku-space``): its VPC, account and CIDRs are looked up.
    space: str | None = None
    #: The peer VPC (kind ``vpc``).
    peer_vpc_id: str | None = None
    peer_owner_id: str | None = None
    peer_region: str | None = None
    peer_cidrs: list[ipaddress.IPv4Network] = Field(default_factory=list)
    #: Route tables on the peer side. Given only when the peer VPC is ours too: then this stack
    #: accepts the peering and adds the routes back.
    peer_route_table_ids: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> PeeringConfig:
        if self.kind == "heroku-space" and not self.space:
            raise ValueError("space is required when kind is heroku-space")
        if self.kind == "vpc" and not self.peer_vpc_id:
            raise ValueError("peerVpcId is required when kind is vpc")
        if not self.peer_cidrs:
            raise ValueError("peerCidrs is required: the networks routed through the peering")
        return self

    @property
    def both_sides_ours(self) -> bool:
        return self.kind == "vpc" and bool(self.peer_route_table_ids)


class NetworkConfig(_Model):
    """Use an existing VPC (``vpcId`` and its private subnets) or create one."""

    vpc_id: str | None = None
    vpc_cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.60.0.0/16")
    subnet_ids: list[str] = Field(default_factory=list)
    #: With ``vpcId``: subnets routed to an internet gateway, for a database the app reaches publicly.
    public_subnet_ids: list[str] = Field(default_factory=list)
    route_table_ids: list[str] = Field(default_factory=list)
    availability_zones: list[str] = Field(default_factory=list)
    allowed_cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(default_factory=list)
    allowed_security_group_ids: list[str] = Field(default_factory=list)
    peering: PeeringConfig | None = None

    @field_validator("allowed_cidrs")
    @classmethod
    def _not_open(
        cls, cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    ) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        for cidr in cidrs:
            if cidr in _OPEN_TO_ALL:
                raise ValueError(f"{cidr} would admit the whole internet; name the networks that need access")
        return cidrs

    @model_validator(mode="after")
    def _complete(self) -> NetworkConfig:
        if self.vpc_id:
            if len(self.subnet_ids) < 2:
                raise ValueError("subnetIds needs at least two private subnets when vpcId is given")
        elif len(set(self.availability_zones)) < 2:
            raise ValueError("availabilityZones needs at least two zones when a VPC is created")
        return self


LogExport = Literal["postgresql", "upgrade"]


def _all_log_exports() -> list[LogExport]:
    return ["postgresql", "upgrade"]


class DatabaseConfig(_Model):
    """RDS PostgreSQL and the databases and roles on it."""

    engine_version: str = "15.8"
    instance_class: str
    allocated_storage_gb: int = Field(default=20, ge=20, le=65536)
    max_allocated_storage_gb: int = Field(default=100, ge=20, le=65536)
    multi_az: bool = False
    backup_retention_days: int = Field(default=7, ge=1, le=35)
    deletion_protection: bool = False
    final_snapshot: bool = False
    performance_insights: bool = True
    log_exports: list[LogExport] = Field(default_factory=_all_log_exports)
    master_username: str = "ferry_admin"
    databases: list[str] = Field(min_length=1)
    #: A bigger class for the load: the instance has it from ``provision`` until ``settle`` (after the switch and
    #: the unfreeze) brings it back to ``instanceClass`` (a modify applied at once: a Multi-AZ failover of seconds).
    load_instance_class: str | None = None
    #: RDS read replicas of the instance (0-5), declared at ``settle``: after the switch (the load never ships to
    #: them) and outside the freeze (creating one takes minutes).
    read_replicas: int = Field(default=0, ge=0, le=5)
    #: The replicas' class (default ``instanceClass``).
    replica_instance_class: str | None = None
    #: The app's config variable that gets, at ``settle``, a read-only URL (the read-only role) of the first
    #: database on the first replica; unset with the other switched variables by a rollback.
    replica_config_var: str | None = None
    #: Set by ``ferry run``'s ``settle`` phase: the instance at ``instanceClass``, the replicas declared. Set it back
    #: to false (with ``migration.loading: true``) before a new run loads the instance again.
    settled: bool = False

    @field_validator("databases")
    @classmethod
    def _identifiers(cls, names: list[str]) -> list[str]:
        for name in names:
            if not _IDENTIFIER.match(name):
                raise ValueError(f"{name!r} is not a plain lower-case identifier")
        return names

    @field_validator("replica_config_var")
    @classmethod
    def _config_var(cls, name: str | None) -> str | None:
        if name is not None and not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            raise ValueError(f"{name!r} is not a config variable name (upper case letters, digits and _)")
        return name

    @model_validator(mode="after")
    def _storage(self) -> DatabaseConfig:
        if self.max_allocated_storage_gb < self.allocated_storage_gb:
            raise ValueError("maxAllocatedStorageGb is smaller than allocatedStorageGb")
        for key, given in (("replicaInstanceClass", self.replica_instance_class),
                           ("replicaConfigVar", self.replica_config_var)):  # fmt: skip
            if given is not None and not self.read_replicas:
                raise ValueError(f"{key} is for read replicas: it needs readReplicas of 1 or more")
        return self

    @property
    def major_version(self) -> str:
        return self.engine_version.split(".")[0]

    @property
    def current_instance_class(self) -> str:
        """The class the stack declares now: the load class until ``settled``, else ``instanceClass``."""
        return self.load_instance_class if self.load_instance_class and not self.settled else self.instance_class

    @property
    def replica_class(self) -> str:
        return self.replica_instance_class or self.instance_class

    @property
    def declared_replicas(self) -> int:
        """How many read replicas the stack declares now: none until ``settled``."""
        return self.read_replicas if self.settled else 0


class CacheConfig(_Model):
    """ElastiCache Redis replication group."""

    engine_version: str = "7.1"
    node_type: str
    replicas: int = Field(default=1, ge=0, le=5)
    #: Defaults to on whenever there is a replica to fail over to, except on the ci stack.
    automatic_failover: bool | None = None
    snapshot_arns: list[str] = Field(default_factory=list)

    @field_validator("snapshot_arns")
    @classmethod
    def _s3_arns(cls, arns: list[str]) -> list[str]:
        for arn in arns:
            if not arn.startswith("arn:aws:s3:::"):
                raise ValueError(f"{arn!r} is not an S3 object ARN (arn:aws:s3:::bucket/key.rdb)")
        return arns

    def failover(self, stack: str) -> bool:
        if self.automatic_failover is not None:
            return self.automatic_failover
        return self.replicas > 0 and stack != "ci"


class MigrationConfig(_Model):
    """What the ``ferry run`` driver moves and how it freezes writes."""

    #: Bulk-load profile on the RDS parameter group while the copy runs.
    loading: bool = False
    postgres: bool = True
    redis: bool = False
    s3: bool = False
    #: Unset: ``fence`` with capture, else ``maintenance``. S3 never stops: uploads go to the old buckets until
    #: the switch and are synced after it.
    freeze: Literal["maintenance", "read-only", "fence"] = "maintenance"
    #: PostgreSQL change capture: copy and follow while the app writes, so the freeze only drains.
    capture: bool = False
    #: How Redis moves: ``live`` (copied and followed from the copy phase on, drained inside the freeze),
    #: ``scan`` (copied whole inside the freeze: no keyspace notifications needed, a longer freeze) or
    #: ``replicaof`` (the target replicates the source, promoted inside the freeze: a self-managed target).
    redis_copy: Literal["live", "scan", "replicaof"] = "live"
    #: How long ``catch-up`` waits for the live copies to catch up with the app's writes.
    catch_up_seconds: float = Field(default=1800.0, ge=1, le=86400)
    #: After maintenance mode and the scale-down: requests in flight finish (Heroku's router allows
    #: 30 s) and stopping workers get their 30 s SIGTERM grace, before the final copy starts.
    drain_seconds: float = Field(default=30.0, ge=0, le=600)
    jobs: int = Field(default=4, ge=1, le=64)
    #: The role DATABASE_URL connects as after the switch: ``app`` (data only) or ``owner`` (DDL too).
    app_role: Literal["app", "owner"] = "app"
    smoke_urls: list[str] = Field(default_factory=list)
    rollback_on_smoke_failure: bool = False
    #: Follow the new stores back into the old ones from the switch until ``ferry finish``, so that a rollback
    #: after the switch loses no write. Unset: on with capture (the follow back is capture on the target).
    reverse: bool | None = None

    @property
    def follows_back(self) -> bool:
        """The stores are followed back from the switch until ``ferry finish``."""
        return self.capture if self.reverse is None else self.reverse

    @model_validator(mode="before")
    @classmethod
    def _default_freeze(cls, data: Any) -> Any:
        if isinstance(data, dict) and "freeze" not in data and data.get("capture") and data.get("postgres", True):
            # Reads go on and the window is the drain's: the fence is what capture is for.
            return {**data, "freeze": "fence"}
        return data

    @model_validator(mode="after")
    def _every_store_freezes(self) -> MigrationConfig:
        if "redis_copy" in self.model_fields_set and not self.redis:
            raise ValueError("redisCopy says how Redis moves: it needs redis: true")
        if self.reverse and self.postgres and not self.capture:
            raise ValueError("reverse: true needs capture: true (the follow back is capture on the target)")
        if self.freeze == "fence" and not (self.capture and self.postgres):
            raise ValueError("freeze: fence needs capture: true (the fence is capture's triggers refusing writes)")
        return self

    @field_validator("smoke_urls")
    @classmethod
    def _http(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return urls


class StackConfig(_Model):
    """Everything one environment's stack declares, read once."""

    stack: str
    aws_region: str
    app: str
    cutover: CutoverState = "pending"
    tags: dict[str, str] = Field(default_factory=dict)
    heroku: HerokuConfig
    network: NetworkConfig
    database: DatabaseConfig
    storage: StorageConfig | None = None
    cache: CacheConfig | None = None
    migration: MigrationConfig = Field(default_factory=MigrationConfig)
    #: How the app reaches its new stores; unset: through the peered Private Space (else refused).
    reach_given: ReachConfig | None = Field(default=None, alias="reach")
    runner: RunnerConfig | None = None
    #: Several moves (databases, apps) into this stack's stores, one freeze each; unset: the one move
    #: ``heroku`` describes.
    moves: list[MoveConfig] = Field(default_factory=list)
    #: Set on a view of one move (:meth:`for_move`): its name.
    move: str | None = None

    @field_validator("app")
    @classmethod
    def _app_name(cls, app: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9-]{1,30}", app):
            raise ValueError(f"{app!r} must be lower case letters, digits and dashes (it names resources)")
        return app

    @model_validator(mode="after")
    def _consistent(self) -> StackConfig:
        if self.moves:
            check_moves(self)
        elif self.heroku.database_addon is None and self.migration.postgres:
            raise ValueError("heroku.databaseAddon is required (or list the moves in ferry:moves)")
        elif self.migration.redis and (self.cache is None or self.heroku.redis_addon is None):
            raise ValueError("migration.redis needs both cache and heroku.redisAddon")
        if self.migration.s3 and self.storage is None:
            raise ValueError("migration.s3 needs storage")
        if self.storage is not None:
            self._bucket_vars_free(self.storage)
        self._replica_var_free()
        if self.migration.s3 and self.storage is not None and self.storage.buckets_by_config:
            unnamed = [b.name for b in self.storage.buckets if b.source and b.config_vars is None]
            if unnamed:
                # Else the app goes on uploading to the old bucket after the switch, which nobody syncs any more.
                raise ValueError(
                    f"migration.s3 moves bucket {unnamed[0]} but nothing says which config variables point the app "
                    "at it: give storage.buckets[].configVars (bucket, region, accessKeyId/secretAccessKey), or "
                    "storage.bucketsByConfig: false"
                )
        if self.is_production:
            database = self.database
            unprotected = [
                key
                for key, on in (
                    ("database.deletionProtection", database.deletion_protection),
                    ("database.finalSnapshot", database.final_snapshot),
                    ("database.multiAz", database.multi_az),
                )
                if not on
            ]
            if unprotected:
                raise ValueError(f"production must keep {', '.join(unprotected)} on")
        self.reach  # noqa: B018 -- refused here, when the file is read, if the app could not reach a store
        return self

    @property
    def reach(self) -> ReachConfig:
        """How the app reaches its new stores (:func:`reach_of`). :raises ValueError: it could not."""
        network = self.network
        return reach_of(
            self.reach_given, heroku_app=self.heroku.app, stack=self.stack,
            peering_kind=network.peering.kind if network.peering else None,
            admitted=bool(network.allowed_cidrs or network.allowed_security_group_ids),
            redis_moved=self.migration.redis,
            buckets_by_role=bool(self.migration.s3 and self.storage is not None and self.storage.app_role),
            public_subnets=not network.vpc_id or bool(network.public_subnet_ids),
        )  # fmt: skip

    def _bucket_vars_free(self, storage: StorageConfig) -> None:
        """A bucket variable must not be one the cutover sets or keeps otherwise (an add-on's URL, an alias's)."""
        heroku = self.heroku
        taken = {ROLLBACK_VAR, "DATABASE_URL", "REDIS_URL", f"{heroku.rollback_alias}_URL",
                 f"{heroku.redis_rollback_alias}_URL"}  # fmt: skip
        for bucket in storage.buckets:
            named = bucket.config_vars.names().values() if bucket.config_vars else ()
            clash = sorted(taken & set(named))
            if clash:
                raise ValueError(
                    f"storage.buckets.{bucket.name}.configVars names {clash[0]}, which the cutover sets or keeps itself"
                )

    def _replica_var_free(self) -> None:
        """``database.replicaConfigVar`` must not be a variable the cutover sets or keeps otherwise, nor a bucket's."""
        name, heroku = self.database.replica_config_var, self.heroku
        if name is None:
            return
        moved = [(move.config_var, f"{move.rollback_alias}_URL") for move in self.moved_addons()]
        buckets = self.storage.buckets if self.storage is not None else []
        taken = {ROLLBACK_VAR, "DATABASE_URL", "REDIS_URL", f"{heroku.rollback_alias}_URL",
                 f"{heroku.redis_rollback_alias}_URL", *(var for pair in moved for var in pair),
                 *(var for b in buckets if b.config_vars for var in b.config_vars.names().values())}  # fmt: skip
        if name in taken:
            raise ValueError(f"database.replicaConfigVar names {name}, which the cutover sets or keeps itself")

    @property
    def is_production(self) -> bool:
        return self.stack == "production"

    def runner_secrets(self) -> list[RunnerSecret]:
        """The secrets a runner of this stack reads: those every run needs, and those of each store it moves."""
        moved = {"postgres": self.migration.postgres, "redis": self.migration.redis and self.cache is not None,
                 "s3": self.migration.s3}  # fmt: skip
        return [secret for secret in RUNNER_SECRETS if secret.needs is None or moved[secret.needs]]

    def move_names(self) -> list[str]:
        """The moves in the order they run (empty: the stack has the one move ``heroku`` describes)."""
        return move_names(self)

    def for_move(self, name: str) -> StackConfig:
        """This stack as its move *name* sees it (:func:`migration.moveconfig.for_move`)."""
        return for_move(self, name)

    def cutover_key(self) -> str:
        """The config key of this view's cutover step: ``cutover``, or its move's ``moves[i].cutover``."""
        return cutover_key(self)

    def moved_addons(self) -> list[MovedAddon]:
        """The add-ons the app leaves: its database, and its Redis when ``migration.redis`` is on."""
        heroku = self.heroku
        moves = []
        if self.migration.postgres and heroku.database_addon:  # the validator makes postgres imply it
            moves.append(
                MovedAddon(
                    heroku.database_addon, heroku.database_config_var.removesuffix("_URL"), heroku.rollback_alias
                )
            )
        if self.migration.redis and heroku.redis_addon:  # the validator makes redis imply both
            moves.append(
                MovedAddon(
                    heroku.redis_addon, heroku.redis_config_var.removesuffix("_URL"), heroku.redis_rollback_alias
                )
            )
        return moves


def _field_aliases() -> dict[str, str]:
    """Pulumi config key (without the ``ferry:`` namespace) → model field."""
    return {
        (field.alias or name): name
        for name, field in StackConfig.model_fields.items()
        if name not in ("stack", "aws_region", "move")
    }


def _validate(raw: Mapping[str, Any], *, stack: str, aws_region: str | None, where: str) -> StackConfig:
    fields = _field_aliases()
    for key in raw:
        if key not in fields:
            raise ConfigError(f"{where}: {PROJECT}:{key} is not a known setting (known: {', '.join(sorted(fields))})")
    if not aws_region:
        raise ConfigError(f"{where}: aws:region is required")
    try:
        return StackConfig.model_validate({**raw, "stack": stack, "awsRegion": aws_region})
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        # A check of the whole file names its keys itself.
        raise ConfigError(f"{where}: {PROJECT}:{key}: {message}" if key else f"{where}: {message}") from None


def stack_file(root: Path, stack: str) -> Path:
    """:param root: the Pulumi project directory. :param stack: the stack (environment) name."""
    return root / f"Pulumi.{stack}.yaml"


def load_stack_file(root: Path, stack: str) -> StackConfig:
    """Read and validate ``Pulumi.<stack>.yaml`` the way the Pulumi program will see it.

    :param root: the Pulumi project directory (where ``Pulumi.yaml`` is).
    :param stack: the stack (environment) name: ``ci``, ``qa``, ``production``.
    :raises ConfigError: the file is missing, is not YAML, or a key is invalid.
    """
    path = stack_file(root, stack)
    try:
        document = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path.name}: no such stack file in {root}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: not valid YAML: {str(exc).splitlines()[0]}") from None
    config = (document or {}).get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise ConfigError(f"{path.name}: has no config: mapping")
    ours = {key.split(":", 1)[1]: value for key, value in config.items() if key.startswith(f"{PROJECT}:")}
    return _validate(ours, stack=stack, aws_region=config.get("aws:region"), where=path.name)


def _decode(value: str) -> Any:
    """Pulumi hands structured config over as JSON text; plain strings stay strings."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def from_pulumi(
    get: Callable[[str], str | None], *, stack: str, aws_region: str | None, keys: Iterable[str] = ()
) -> StackConfig:
    """Validate the program's config as ``pulumi.Config`` returns it.

    :param get: ``pulumi.Config("ferry").get``.
    :param stack: ``pulumi.get_stack()``.
    :param aws_region: ``pulumi.Config("aws").get("region")``.
    :param keys: every config key the engine passed (``namespace:key``), to refuse misspelled ones.
    """
    where = f"Pulumi.{stack}.yaml"
    raw = {alias: _decode(value) for alias in _field_aliases() if (value := get(alias)) is not None}
    for key in keys:
        namespace, _, name = key.partition(":")
        if namespace == PROJECT and name not in raw:
            raw[name] = None  # reported as unknown by _validate
    return _validate(raw, stack=stack, aws_region=aws_region, where=where)
