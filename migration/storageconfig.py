"""The stack file's ``ferry:storage``: the buckets, the app's identity for them, and the config variables
through which the app finds them (what the switch points at the new buckets)."""

from __future__ import annotations

import re

from pydantic import Field, field_validator, model_validator

from migration.configmodel import Model

__all__ = ["BucketConfig", "BucketConfigVars", "StorageConfig"]

_CONFIG_VAR = re.compile(r"^[A-Z][A-Z0-9_]*$")


class BucketConfigVars(Model):
    """The app's config variables that say where one bucket is and how to reach it.

    :param bucket: holds the bucket's name (``S3_BUCKET_NAME``).
    :param region: holds its region (``AWS_REGION``).
    :param access_key_id: with :attr:`secret_access_key`, the access key pair of the app's IAM user
        (``AWS_ACCESS_KEY_ID``): for an app that runs outside AWS (``storage.appUser``).
    """

    bucket: str
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None

    @field_validator("bucket", "region", "access_key_id", "secret_access_key")
    @classmethod
    def _config_var(cls, name: str | None) -> str | None:
        if name is not None and not _CONFIG_VAR.match(name):
            raise ValueError(f"{name!r} is not a config variable name (upper case letters, digits, '_')")
        return name

    @model_validator(mode="after")
    def _pair(self) -> BucketConfigVars:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("accessKeyId and secretAccessKey come together: the two halves of one key pair")
        names = list(self.names().values())
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"config variable {repeated[0]} is named for two things")
        return self

    def names(self) -> dict[str, str]:
        """What each named variable holds (``bucket``, ``region``, ``access_key_id``, …) → its name."""
        return {what: name for what, name in self.model_dump().items() if name is not None}

    @property
    def key_pair(self) -> bool:
        return self.access_key_id is not None


class BucketConfig(Model):
    """One bucket, named by the convention; ``source`` is the bucket its files come from."""

    name: str
    source: str | None = None
    #: Where the app finds this bucket; the switch points them at the new one.
    config_vars: BucketConfigVars | None = None
    #: The conventionally named bucket already exists in AWS: adopt it (``pulumi import``).
    import_existing: bool = False
    noncurrent_version_expiration_days: int = Field(default=30, ge=1)
    abort_incomplete_multipart_days: int = Field(default=7, ge=1)
    transition_to_infrequent_access_days: int | None = Field(default=None, ge=30)


class StorageConfig(Model):
    """S3 buckets and the app's least-privilege access to them."""

    naming: str = "{app}-{stack}-{name}"
    buckets: list[BucketConfig] = Field(min_length=1)
    app_user: str | None = None
    app_role: str | None = None
    read_only_buckets: list[str] = Field(default_factory=list)
    #: ``false``: the app does not find its buckets through config variables (they are written in its code,
    #: or it reads them elsewhere), so the switch sets none; moving S3 then needs no ``configVars``.
    buckets_by_config: bool = True

    @model_validator(mode="after")
    def _principal(self) -> StorageConfig:
        if bool(self.app_user) == bool(self.app_role):
            raise ValueError("give exactly one of appUser or appRole: the identity the app uses for its buckets")
        try:
            self.naming.format(app="a", stack="s", name="n")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"naming may use only {{app}}, {{stack}} and {{name}}: {exc}") from None
        names = [bucket.name for bucket in self.buckets]
        unknown = sorted(set(self.read_only_buckets) - set(names))
        if unknown:
            raise ValueError(f"readOnlyBuckets names buckets not configured: {', '.join(unknown)}")
        if len(set(names)) != len(names):
            raise ValueError("bucket names repeat")
        self._check_config_vars()
        return self

    def _check_config_vars(self) -> None:
        named = {bucket.name: bucket.config_vars for bucket in self.buckets if bucket.config_vars is not None}
        if named and not self.buckets_by_config:
            raise ValueError(f"bucketsByConfig is false but bucket {next(iter(named))} names configVars")
        holders: dict[str, tuple[str, str]] = {}
        for bucket, config_vars in named.items():
            if config_vars.key_pair and not self.app_user:
                raise ValueError(
                    f"buckets.{bucket}.configVars: an access key pair needs appUser (an appRole has no keys: "
                    "the app runs in AWS and its role reaches the bucket)"
                )
            for what, name in config_vars.names().items():
                # The same region or key variable may serve several buckets; one bucket variable names one bucket.
                holder = holders.setdefault(name, (bucket, what))
                if holder[1] != what or (what == "bucket" and holder[0] != bucket):
                    raise ValueError(f"config variable {name} is named by buckets {holder[0]} and {bucket}")

    def bucket_name(self, app: str, stack: str, bucket: BucketConfig) -> str:
        return self.naming.format(app=app, stack=stack, name=bucket.name)

    def key_pair_needed(self) -> bool:
        """Some bucket's app reads an access key pair: the stack creates one for ``appUser``."""
        return any(bucket.config_vars is not None and bucket.config_vars.key_pair for bucket in self.buckets)
