"""Runner: ferry's data plane as a Fargate task inside the target's network (``ferry run --runner ecs``).

The task runs in the stack's private subnets, next to the new stores, and reaches the old ones (Heroku) through
the way out of those subnets: the NAT gateway of a VPC the stack creates (:mod:`stacks.egress`), or whatever an
existing VPC's private subnets already route through (a NAT gateway, VPC endpoints), which this stack assumes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from migration.runner.base import TASK_COMMAND
from stacks.config import BucketConfig, RunnerConfig
from stacks.egress import OPEN_ROUTE
from stacks.network import POSTGRES_PORT, REDIS_PORT
from stacks.storage import OBJECT_READ_ACTIONS, OBJECT_WRITE_ACTIONS, locked_bucket

__all__ = [
    "CONTAINER",
    "ENTRY_POINT",
    "HEROKU_REDIS_PORTS",
    "HTTPS_PORT",
    "KEPT_IMAGES",
    "TASK_USER",
    "Runner",
    "RunnerArgs",
]

#: The container's name in the task definition (what ``ferry run --runner ecs`` overrides).
CONTAINER = "ferry"
#: The worker's entry point: the command every runner starts a task with.
ENTRY_POINT = TASK_COMMAND
#: Any uid but root's: the image's files are world-readable and the worker writes only to its scratch disk.
TASK_USER = "10001"
HTTPS_PORT = 443
#: A Heroku Redis listens on a port Heroku picks per add-on (its REDIS_URL names it), not on 6379: the task
#: that copies one may connect to any unprivileged port, TCP only.
HEROKU_REDIS_PORTS = (1024, 65535)
#: How many images the repository keeps: enough to go back a few releases, not a registry's worth.
KEPT_IMAGES = 10
_ASSUME_ECS_TASKS = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)


@dataclass(frozen=True)
class RunnerArgs:
    """:param prefix: resource name prefix (``app-stack``). :param stack: the stack (ci is disposable).
    :param region: the stack's AWS region (the task's ``AWS_REGION`` and its log configuration).
    :param config: the ``runner`` settings. :param vpc_id: where the task's security group lives.
    :param secret_arns: environment variable → the ARN of the secret the task reads into it.
    :param bucket_arns: the stack's buckets, which the task copies into.
    :param heroku_redis: the task copies a Heroku Redis (its per-add-on port must be reachable).
    """

    prefix: str
    stack: str
    region: str
    config: RunnerConfig
    vpc_id: pulumi.Input[str]
    secret_arns: Mapping[str, pulumi.Input[str]]
    bucket_arns: Sequence[pulumi.Input[str]]
    heroku_redis: bool
    tags: Mapping[str, str]


class Runner(pulumi.ComponentResource):
    """An ECR repository for ferry's image, an ECS cluster, a log group, the task's security group (no ingress,
    egress only to the ports it uses), its two roles (the execution role pulls the image, writes the logs and
    reads the secrets; the task role reaches this stack's buckets and the state bucket, nothing else), the
    state bucket where a run's state lives, and the Fargate task definition."""

    cluster_arn: pulumi.Output[str]
    task_definition_arn: pulumi.Output[str]
    security_group_id: pulumi.Output[str]
    repository_url: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    state_bucket_name: pulumi.Output[str]
    execution_role_arn: pulumi.Output[str]
    task_role_arn: pulumi.Output[str]

    def __init__(self, name: str, args: RunnerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ferry:stacks:Runner", name, None, opts)
        self._args, self._name = args, name
        prefix, tags = args.prefix, dict(args.tags)
        child = pulumi.ResourceOptions(parent=self)
        # ci is torn down after each run: what it holds then is no one's data.
        disposable = args.stack == "ci"

        state = locked_bucket(
            f"{prefix}-ferry-state", BucketConfig(name="ferry-state"), parent=self, tags=tags, force_destroy=disposable
        )
        repository = aws.ecr.Repository(
            f"{name}-repository",
            name=f"{prefix}-ferry",
            image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(scan_on_push=True),
            encryption_configurations=[aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS")],
            force_delete=disposable,
            tags=tags,
            opts=child,
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-repository",
            repository=repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": f"keep the last {KEPT_IMAGES} images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": KEPT_IMAGES,
                            },
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
            opts=child,
        )
        cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            name=f"{prefix}-ferry",
            settings=[aws.ecs.ClusterSettingArgs(name="containerInsights", value="enabled")],
            tags=tags,
            opts=child,
        )
        logs = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/ferry/{prefix}",
            retention_in_days=args.config.log_retention_days,
            tags=tags,
            opts=child,
        )
        group = self._security_group(f"{name}-security-group")
        execution_role = self._execution_role(f"{name}-execution-role", repository.arn, logs.arn)
        task_role = self._task_role(f"{name}-task-role", state.arn)
        definition = self._task_definition(
            f"{name}-task", repository.repository_url, logs.name, state.bucket, execution_role, task_role
        )

        self.cluster_arn, self.task_definition_arn = cluster.arn, definition.arn
        self.security_group_id, self.repository_url = group.id, repository.repository_url
        self.log_group_name, self.state_bucket_name = logs.name, state.bucket
        self.execution_role_arn, self.task_role_arn = execution_role.arn, task_role.arn
        self.register_outputs(
            {
                "cluster_arn": self.cluster_arn,
                "task_definition_arn": self.task_definition_arn,
                "security_group_id": self.security_group_id,
                "repository_url": self.repository_url,
                "log_group_name": self.log_group_name,
                "state_bucket_name": self.state_bucket_name,
                "execution_role_arn": self.execution_role_arn,
                "task_role_arn": self.task_role_arn,
            }
        )

    def _security_group(self, name: str) -> aws.ec2.SecurityGroup:
        """The task's group: no ingress, egress to the ports it uses only. :param name: its resource name."""
        ports = [
            (HTTPS_PORT, HTTPS_PORT, "HTTPS: ECR, S3, CloudWatch Logs, Secrets Manager, the Heroku API"),
            (POSTGRES_PORT, POSTGRES_PORT, "PostgreSQL: the old database and the new one"),
            (REDIS_PORT, REDIS_PORT, "Redis: the new cache"),
        ]
        if self._args.heroku_redis:
            ports.append((*HEROKU_REDIS_PORTS, "Heroku Redis: the port its REDIS_URL names"))
        return aws.ec2.SecurityGroup(
            name,
            vpc_id=self._args.vpc_id,
            description=f"{self._args.prefix}: ferry's runner tasks, outbound only",
            # Nothing connects to the task. Its DNS lookups go to the VPC's resolver, which no group filters.
            ingress=[],
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="tcp", from_port=low, to_port=high, cidr_blocks=[OPEN_ROUTE], description=about
                )
                for low, high, about in ports
            ],
            tags=dict(self._args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _role(self, name: str, role_name: str, about: str, statements: list[dict[str, Any]]) -> aws.iam.Role:
        """A role ECS tasks assume, with its one inline policy.

        :param name: the resources' name. :param role_name: the role's IAM name. :param about: its description.
        :param statements: the inline policy's statements.
        """
        role = aws.iam.Role(
            name,
            name=role_name,
            description=f"{self._args.prefix}: {about}",
            assume_role_policy=_ASSUME_ECS_TASKS,
            tags=dict(self._args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        aws.iam.RolePolicy(
            name,
            role=role.id,
            policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": statements}),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return role

    def _execution_role(
        self, name: str, repository_arn: pulumi.Output[str], log_group_arn: pulumi.Output[str]
    ) -> aws.iam.Role:
        """What ECS needs to start the task: pull its image, write its logs, read its secrets.

        :param name: the resources' name. :param repository_arn: ferry's repository.
        :param log_group_arn: the task's log group (without the ``:*`` of its streams).
        """
        statements: list[dict[str, Any]] = [
            {
                "Sid": "PullFerryImage",
                "Effect": "Allow",
                "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
                "Resource": [repository_arn],
            },
            {
                # AWS allows this action on "*" only (it names no repository). It is the execution role's, never
                # the task role's: the token it gives pulls, and only the repository above may be pulled from.
                "Sid": "LogInToEcr",
                "Effect": "Allow",
                "Action": ["ecr:GetAuthorizationToken"],
                "Resource": ["*"],
            },
            {
                "Sid": "WriteTaskLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                # The group and its streams (log-group:NAME:log-stream:…).
                "Resource": [log_group_arn, pulumi.Output.concat(log_group_arn, ":*")],
            },
        ]
        secret_arns = list(self._args.secret_arns.values())
        if secret_arns:
            statements.append(
                {
                    "Sid": "ReadRunnerSecrets",
                    "Effect": "Allow",
                    "Action": ["secretsmanager:GetSecretValue"],
                    "Resource": secret_arns,
                }
            )
        return self._role(name, f"{self._args.prefix}-ferry-execution", "starts ferry's runner tasks", statements)

    def _task_role(self, name: str, state_bucket_arn: pulumi.Output[str]) -> aws.iam.Role:
        """What the worker may do in AWS: this stack's buckets and the state bucket, nothing else.

        :param name: the resources' name. :param state_bucket_arn: the state bucket.
        """
        buckets = [*self._args.bucket_arns, state_bucket_arn]
        # Every bucket read and written, the read-only ones too: the task is what fills them.
        statements: list[dict[str, Any]] = [
            {
                "Sid": "ListBuckets",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketLocation",
                           "s3:ListBucketMultipartUploads"],
                "Resource": buckets,
            },
            {
                "Sid": "ReadWriteObjects",
                "Effect": "Allow",
                "Action": [*OBJECT_READ_ACTIONS, *OBJECT_WRITE_ACTIONS, "s3:ListMultipartUploadParts"],
                "Resource": [pulumi.Output.concat(arn, "/*") for arn in buckets],
            },
        ]  # fmt: skip
        return self._role(name, f"{self._args.prefix}-ferry-task", "ferry's runner tasks", statements)

    def _task_definition(
        self,
        name: str,
        repository_url: pulumi.Output[str],
        log_group: pulumi.Output[str],
        state_bucket: pulumi.Output[str],
        execution_role: aws.iam.Role,
        task_role: aws.iam.Role,
    ) -> aws.ecs.TaskDefinition:
        """The Fargate task: one container running the worker, its secrets by reference only.

        :param name: its resource name. :param repository_url: where its image is. :param log_group: its logs'
        group. :param state_bucket: the state bucket's name. :param execution_role: what starts it.
        :param task_role: what it runs as.
        """
        args = self._args
        config = args.config
        container = {
            "name": CONTAINER,
            "image": pulumi.Output.concat(repository_url, ":", config.image_tag),
            "essential": True,
            "entryPoint": list(ENTRY_POINT),
            "user": TASK_USER,
            "readonlyRootFilesystem": False,
            # Fargate's most: the worker ends its job on SIGTERM (a stopped run resumes from its state).
            "stopTimeout": 120,
            # Plain values only; every secret is a reference ECS resolves as the task starts.
            "environment": [
                {"name": "AWS_REGION", "value": args.region},
                {"name": "FERRY_STACK", "value": args.stack},
                {"name": "FERRY_STATE_BUCKET", "value": state_bucket},
            ],
            "secrets": [{"name": env, "valueFrom": arn} for env, arn in sorted(args.secret_arns.items())],
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group,
                    "awslogs-region": args.region,
                    "awslogs-stream-prefix": CONTAINER,
                },
            },
        }
        return aws.ecs.TaskDefinition(
            name,
            family=f"{args.prefix}-ferry",
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=str(config.cpu),
            memory=str(config.memory_mb),
            # 21 GiB is what every Fargate task gets: the setting is only for more.
            ephemeral_storage=(
                aws.ecs.TaskDefinitionEphemeralStorageArgs(size_in_gib=config.ephemeral_storage_gb)
                if config.ephemeral_storage_gb > 21
                else None
            ),
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX", cpu_architecture="X86_64"
            ),
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            container_definitions=pulumi.Output.json_dumps([container]),
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
