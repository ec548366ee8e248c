"""Storage: the app's S3 buckets under their new names, locked down, and the app's access to them
(with an access key pair for an ``appUser`` whose app reads one from its config variables)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from stacks.config import BucketConfig, StorageConfig

__all__ = ["OBJECT_READ_ACTIONS", "OBJECT_WRITE_ACTIONS", "Storage", "StorageArgs", "locked_bucket"]

OBJECT_READ_ACTIONS = ["s3:GetObject", "s3:GetObjectTagging", "s3:GetObjectVersion"]
OBJECT_WRITE_ACTIONS = ["s3:PutObject", "s3:PutObjectTagging", "s3:DeleteObject", "s3:AbortMultipartUpload"]


@dataclass(frozen=True)
class StorageArgs:
    """:param app: the app name and :param stack: the stack name, both used by the naming convention."""

    app: str
    stack: str
    config: StorageConfig
    tags: Mapping[str, str]


class Storage(pulumi.ComponentResource):
    """Versioned, encrypted, private buckets with lifecycle rules, and one IAM policy that gives
    the app's user or role only its buckets and only the actions it needs; for an app user whose app reads
    its keys from config variables, an access key pair."""

    bucket_names: dict[str, pulumi.Output[str]]
    bucket_arns: dict[str, pulumi.Output[str]]
    policy_arn: pulumi.Output[str]
    #: The app user's key pair, both halves secret; ``None`` unless some bucket's ``configVars`` names one.
    access_key_id: pulumi.Output[str] | None
    secret_access_key: pulumi.Output[str] | None

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ferry:stacks:Storage", name, None, opts)
        self._args = args
        buckets = {bucket.name: self._bucket(bucket) for bucket in args.config.buckets}
        self.bucket_names = {key: bucket.bucket for key, bucket in buckets.items()}
        self.bucket_arns = {key: bucket.arn for key, bucket in buckets.items()}
        self.policy_arn = self._app_policy(name)
        self.access_key_id, self.secret_access_key = self._key_pair(name)
        self.register_outputs(
            {
                "bucket_names": self.bucket_names,
                "bucket_arns": self.bucket_arns,
                "policy_arn": self.policy_arn,
                "access_key_id": self.access_key_id,
                "secret_access_key": self.secret_access_key,
            }
        )

    def switched_vars(self, region: str) -> dict[str, pulumi.Input[str]]:
        """The config variables the switch sets for the moved buckets (those with a ``source`` and
        ``configVars``): variable → its new value.

        :param region: the buckets' region, for a ``region`` variable.
        """
        values: dict[str, pulumi.Input[str]] = {}
        for bucket in self._args.config.buckets:
            names = bucket.config_vars
            if bucket.source is None or names is None:
                continue
            values[names.bucket] = self.bucket_names[bucket.name]
            if names.region is not None:
                values[names.region] = region
            if names.access_key_id is not None and names.secret_access_key is not None:
                assert self.access_key_id is not None and self.secret_access_key is not None  # key_pair_needed()
                values[names.access_key_id] = self.access_key_id
                values[names.secret_access_key] = self.secret_access_key
        return values

    def _bucket(self, config: BucketConfig) -> aws.s3.Bucket:
        args = self._args
        return locked_bucket(args.config.bucket_name(args.app, args.stack, config), config, parent=self, tags=args.tags)

    def _app_policy(self, name: str) -> pulumi.Output[str]:
        config = self._args.config
        statements: list[dict[str, Any]] = []
        for bucket in config.buckets:
            arn = self.bucket_arns[bucket.name]
            read_only = bucket.name in config.read_only_buckets
            statements += [
                {"Sid": f"List{_sid(bucket.name)}", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": [arn]},
                {
                    "Sid": f"Objects{_sid(bucket.name)}",
                    "Effect": "Allow",
                    "Action": OBJECT_READ_ACTIONS if read_only else OBJECT_READ_ACTIONS + OBJECT_WRITE_ACTIONS,
                    "Resource": [pulumi.Output.concat(arn, "/*")],
                },
            ]
        policy = aws.iam.Policy(
            f"{name}-app-access",
            description=f"{self._args.app} ({self._args.stack}): its own buckets only",
            policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements}),
            tags=dict(self._args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        if config.app_user:
            aws.iam.UserPolicyAttachment(
                f"{name}-app-access",
                user=config.app_user,
                policy_arn=policy.arn,
                opts=pulumi.ResourceOptions(parent=self),
            )
        elif config.app_role:
            aws.iam.RolePolicyAttachment(
                f"{name}-app-access",
                role=config.app_role,
                policy_arn=policy.arn,
                opts=pulumi.ResourceOptions(parent=self),
            )
        return policy.arn

    def _key_pair(self, name: str) -> tuple[pulumi.Output[str] | None, pulumi.Output[str] | None]:
        config = self._args.config
        # The config model allows a key pair only with appUser: a role has no keys.
        if not config.key_pair_needed() or not config.app_user:
            return None, None
        key = aws.iam.AccessKey(f"{name}-app-key", user=config.app_user, opts=pulumi.ResourceOptions(parent=self))
        # The id is kept secret too: it is half the credential, and alone it gives the account away.
        return pulumi.Output.secret(key.id), pulumi.Output.secret(key.secret)


def locked_bucket(
    bucket_name: str,
    config: BucketConfig,
    *,
    parent: pulumi.Resource,
    tags: Mapping[str, str],
    force_destroy: bool = False,
) -> aws.s3.Bucket:
    """A private bucket: owner-enforced, public access blocked, versioned, KMS-encrypted, TLS-only, with
    housekeeping lifecycle rules. Its resources are children of *parent*.

    :param bucket_name: the bucket's name (and its resources'). :param config: its lifecycle and adoption settings.
    :param force_destroy: ``pulumi destroy`` empties it first (a disposable stack's own bucket only).
    """
    child = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(
        bucket_name,
        bucket=bucket_name,
        force_destroy=force_destroy,
        tags=dict(tags),
        opts=pulumi.ResourceOptions(
            parent=parent,
            import_=bucket_name if config.import_existing else None,
            # An adopted bucket holds the app's files: `pulumi destroy` must not take it along.
            retain_on_delete=config.import_existing,
        ),
    )
    aws.s3.BucketOwnershipControls(
        bucket_name,
        bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=child,
    )
    aws.s3.BucketPublicAccessBlock(
        bucket_name,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=child,
    )
    aws.s3.BucketVersioning(
        bucket_name,
        bucket=bucket.id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
        opts=child,
    )
    aws.s3.BucketServerSideEncryptionConfiguration(
        bucket_name,
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms"
                ),
                bucket_key_enabled=True,
            )
        ],
        opts=child,
    )
    transitions = (
        [
            aws.s3.BucketLifecycleConfigurationRuleTransitionArgs(
                days=config.transition_to_infrequent_access_days, storage_class="STANDARD_IA"
            )
        ]
        if config.transition_to_infrequent_access_days
        else None
    )
    aws.s3.BucketLifecycleConfiguration(
        bucket_name,
        bucket=bucket.id,
        rules=[
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="ferry-housekeeping",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=config.noncurrent_version_expiration_days
                ),
                abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                    days_after_initiation=config.abort_incomplete_multipart_days
                ),
                transitions=transitions,
            )
        ],
        opts=child,
    )
    aws.s3.BucketPolicy(
        bucket_name,
        bucket=bucket.id,
        policy=pulumi.Output.json_dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "DenyInsecureTransport",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [bucket.arn, pulumi.Output.concat(bucket.arn, "/*")],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        ),
        opts=child,
    )
    return bucket


def _sid(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("_", "-").split("-"))
