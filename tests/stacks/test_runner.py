"""The runner under mocks (ferry as a Fargate task inside the target's network), the way out of a created VPC,
and the public database of a Common Runtime app (``reach.app: public``)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from migration.errors import ConfigError
from migration.runnerconfig import RUNNER_SECRETS, secret_name
from stacks.config import StackConfig, load_stack_file
from stacks.egress import private_blocks, public_blocks
from stacks.runner import HEROKU_REDIS_PORTS, KEPT_IMAGES
from tests.stacks.outcomes import declared, secret_value
from tests.support.pulumi_program import ROOT, Declared, Outcome, stack_config

STACKS = ["ci", "qa", "production"]
RUNNER, SECRETS, NETWORK = "ferry:stacks:Runner", "ferry:stacks:RunnerSecrets", "ferry:stacks:Network"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
RUNNER_OUTPUTS = ("runnerCluster", "runnerTaskDefinition", "runnerSubnets", "runnerSecurityGroup",
                  "runnerRepositoryUrl", "runnerLogGroup", "runnerSecrets", "stateBucket")  # fmt: skip
#: Where the secret values the stack knows would show if one leaked: generated passwords, connection URLs.
SECRET_TEXT = ("generated", "postgres://", "rediss://", "redis://")


def _statements(outcome: Outcome, role_resource: str) -> list[dict[str, Any]]:
    (policy,) = [p for p in outcome.of_type(ROLE_POLICY) if p.inputs["role"] == f"{role_resource}-id"]
    statements: list[dict[str, Any]] = json.loads(policy.inputs["policy"])["Statement"]
    assert statements and all(statement["Effect"] == "Allow" for statement in statements)
    return statements


def _resources(statements: list[dict[str, Any]]) -> set[str]:
    return {resource for statement in statements for resource in statement["Resource"]}


def _container(outcome: Outcome) -> tuple[str, dict[str, Any]]:
    text = outcome.one("aws:ecs/taskDefinition:TaskDefinition").inputs["containerDefinitions"]
    # Plain text: a secret value anywhere in it would have made the whole definition a Pulumi secret.
    assert isinstance(text, str), text
    (container,) = json.loads(text)
    return text, container


def _named(outcome: Outcome, type_: str, name: str) -> Declared:
    (found,) = [resource for resource in outcome.of_type(type_) if resource.name == name]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_example_stack_declares_a_runner_and_exports_where_it_runs(stack: str) -> None:
    outcome, config = declared(stack), load_stack_file(ROOT, stack)
    assert outcome.one(RUNNER) and outcome.one(SECRETS)
    assert set(RUNNER_OUTPUTS) <= set(outcome.outputs) and not set(RUNNER_OUTPUTS) & outcome.secret_outputs
    prefix = f"shop-{stack}"
    assert outcome.outputs["runnerCluster"] == f"arn:aws:ecs:us-east-1:111122223333:cluster/{prefix}-ferry"
    assert outcome.outputs["runnerTaskDefinition"].endswith(f":task-definition/{prefix}-ferry:1")
    assert outcome.outputs["runnerLogGroup"] == f"/ferry/{prefix}"
    assert outcome.outputs["stateBucket"] == f"{prefix}-ferry-state"
    assert outcome.outputs["runnerRepositoryUrl"].endswith(f"/{prefix}-ferry")
    # The private subnets: those given, or those created (never the public ones).
    private = config.network.subnet_ids or [f"{prefix}-private-{zone}-id" for zone in config.network.availability_zones]
    assert outcome.outputs["runnerSubnets"] == private
    cluster = outcome.one("aws:ecs/cluster:Cluster").inputs
    assert cluster["settings"] == [{"name": "containerInsights", "value": "enabled"}]
    repository = outcome.one("aws:ecr/repository:Repository").inputs
    assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repository["encryptionConfigurations"] == [{"encryptionType": "KMS"}]
    rules = json.loads(outcome.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])["rules"]
    assert [rule["selection"]["countNumber"] for rule in rules] == [KEPT_IMAGES]
    assert outcome.one("aws:cloudwatch/logGroup:LogGroup").inputs["retentionInDays"] == config.runner.log_retention_days


@pytest.mark.parametrize("stack", STACKS)
def test_the_state_bucket_is_locked_down_like_the_apps(stack: str) -> None:
    outcome = declared(stack)
    name = f"shop-{stack}-ferry-state"
    assert _named(outcome, "aws:s3/bucket:Bucket", name).parents[-1] == RUNNER
    block = _named(outcome, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", name).inputs
    assert all(block[flag] is True for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                 "restrictPublicBuckets"))  # fmt: skip
    versioning = _named(outcome, "aws:s3/bucketVersioning:BucketVersioning", name).inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    encryption = _named(
        outcome, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", name
    ).inputs
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    policy = json.loads(_named(outcome, "aws:s3/bucketPolicy:BucketPolicy", name).inputs["policy"])["Statement"][0]
    assert policy["Effect"] == "Deny" and policy["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("stack", STACKS)
def test_the_task_role_reaches_this_stacks_buckets_and_nothing_else(stack: str) -> None:
    outcome = declared(stack)
    statements = _statements(outcome, "runner-task-role")
    resources = _resources(statements)
    assert "*" not in resources and not any(resource.endswith(":*") for resource in resources)
    buckets = [*outcome.outputs["bucketArns"].values(), f"arn:aws:s3:::shop-{stack}-ferry-state"]
    assert resources == {*buckets, *(f"{arn}/*" for arn in buckets)}
    actions = {action for statement in statements for action in statement["Action"]}
    assert all(action.startswith("s3:") and "*" not in action for action in actions)
    assert {"s3:PutObject", "s3:GetObject", "s3:ListBucket"} <= actions


@pytest.mark.parametrize("stack", STACKS)
def test_the_execution_role_pulls_logs_and_reads_only_this_stacks_secrets(stack: str) -> None:
    outcome = declared(stack)
    statements = _statements(outcome, "runner-execution-role")
    by_sid = {statement["Sid"]: statement for statement in statements}
    # The one "*": the action AWS allows on nothing else, and nothing beside it.
    assert [s["Sid"] for s in statements if "*" in s["Resource"]] == ["LogInToEcr"]
    assert by_sid["LogInToEcr"]["Action"] == ["ecr:GetAuthorizationToken"] and by_sid["LogInToEcr"]["Resource"] == ["*"]
    log_group = f"arn:aws:logs:us-east-1:111122223333:log-group:/ferry/shop-{stack}"
    assert {r for r in _resources(statements) if r.endswith(":*")} == {f"{log_group}:*"}
    assert set(by_sid["WriteTaskLogs"]["Resource"]) == {log_group, f"{log_group}:*"}
    assert by_sid["PullFerryImage"]["Resource"] == [f"arn:aws:ecr:us-east-1:111122223333:repository/shop-{stack}-ferry"]
    assert set(by_sid["ReadRunnerSecrets"]["Resource"]) == set(outcome.outputs["runnerSecrets"].values())
    assert by_sid["ReadRunnerSecrets"]["Action"] == ["secretsmanager:GetSecretValue"]
    for role in outcome.of_type("aws:iam/role:Role"):
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert trust == [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                          "Action": "sts:AssumeRole"}]  # fmt: skip


@pytest.mark.parametrize("stack", STACKS)
def test_the_container_reads_its_secrets_by_reference_only(stack: str) -> None:
    outcome = declared(stack)
    text, container = _container(outcome)
    secrets = outcome.outputs["runnerSecrets"]
    declared_arns = {s.name: s.inputs["arn"] for s in outcome.of_type("aws:secretsmanager/secret:Secret")}
    assert set(secrets.values()) == set(declared_arns.values())
    assert container["secrets"] == [{"name": env, "valueFrom": secrets[env]} for env in sorted(secrets)]
    assert {item["name"]: item["value"] for item in container["environment"]} == {
        "AWS_REGION": "us-east-1",
        "FERRY_STACK": stack,
        "FERRY_STATE_BUCKET": f"shop-{stack}-ferry-state",
    }
    # The values the stack wrote into the secrets exist (so their absence here means something) and stay out.
    owner_url = outcome.outputs["databaseOwnerUrls"]["shop"]
    version = _named(outcome, "aws:secretsmanager/secretVersion:SecretVersion", "runner-secrets-target-database-url")
    assert secret_value(version.inputs["secretString"]) == owner_url
    assert owner_url not in text and not any(marker in text for marker in SECRET_TEXT)
    assert not any(marker in json.dumps(outcome.one("aws:ecs/taskDefinition:TaskDefinition").inputs)
                   for marker in SECRET_TEXT)  # fmt: skip


@pytest.mark.parametrize("stack", STACKS)
def test_the_container_runs_the_worker_as_a_user_logging_to_its_group(stack: str) -> None:
    from migration.runner.base import TASK_COMMAND

    _, container = _container(declared(stack))
    tag = load_stack_file(ROOT, stack).runner.image_tag  # type: ignore[union-attr]
    assert container["name"] == "ferry" and container["essential"] is True
    assert container["image"] == f"111122223333.dkr.ecr.us-east-1.amazonaws.com/shop-{stack}-ferry:{tag}"
    assert container["entryPoint"] == list(TASK_COMMAND)
    assert container["user"] not in ("0", "root", "") and not container["user"].startswith("0:")
    assert container["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {"awslogs-group": f"/ferry/shop-{stack}", "awslogs-region": "us-east-1",
                    "awslogs-stream-prefix": "ferry"},
    }  # fmt: skip


@pytest.mark.parametrize("stack", STACKS)
def test_the_task_size_is_the_stack_files(stack: str) -> None:
    runner = load_stack_file(ROOT, stack).runner
    assert runner is not None
    task = declared(stack).one("aws:ecs/taskDefinition:TaskDefinition").inputs
    assert (task["cpu"], task["memory"]) == (str(runner.cpu), str(runner.memory_mb))
    assert task.get("ephemeralStorage") == ({"sizeInGib": runner.ephemeral_storage_gb}
                                            if runner.ephemeral_storage_gb > 21 else None)  # fmt: skip
    assert (stack == "ci") == ("ephemeralStorage" not in task)  # ci keeps Fargate's 21 GiB
    assert task["family"] == f"shop-{stack}-ferry" and task["requiresCompatibilities"] == ["FARGATE"]
    assert task["networkMode"] == "awsvpc"
    assert task["runtimePlatform"] == {"operatingSystemFamily": "LINUX", "cpuArchitecture": "X86_64"}
    assert task["executionRoleArn"].endswith("-ferry-execution") and task["taskRoleArn"].endswith("-ferry-task")


@pytest.mark.parametrize("stack", STACKS)
def test_the_secrets_are_those_of_the_moved_stores(stack: str) -> None:
    outcome, config = declared(stack), load_stack_file(ROOT, stack)
    secrets = {s.inputs["name"]: s for s in outcome.of_type("aws:secretsmanager/secret:Secret")}
    expected = {s for s in RUNNER_SECRETS if s.needs != "redis" or stack != "ci"}  # ci's Redis stays on Heroku
    assert set(secrets) == {secret_name("shop", stack, s) for s in expected}
    assert set(outcome.outputs["runnerSecrets"]) == {s.env for s in expected}
    assert all(s.parents[-1] == SECRETS and s.inputs["tags"]["managed-by"] == "ferry" for s in secrets.values())
    versions = {v.name: v for v in outcome.of_type("aws:secretsmanager/secretVersion:SecretVersion")}
    # The stack writes what it knows; a person fills the rest (`ferry secrets set`).
    assert set(versions) == {f"runner-secrets-{s.name}" for s in expected if s.filled_by == "stack"}
    if config.cache is not None:
        redis = versions["runner-secrets-target-redis-url"].inputs["secretString"]
        assert secret_value(redis) == outcome.outputs["redisUrl"]
    unmoved = declared(stack, **{"ferry:migration": {**_migration(stack), "s3": False}}).outputs["runnerSecrets"]
    assert set(unmoved) == {s.env for s in expected if s.needs != "s3"}


def _migration(stack: str) -> dict[str, Any]:
    migration: dict[str, Any] = json.loads(stack_config(stack)["ferry:migration"])
    return migration


@pytest.mark.parametrize("stack", STACKS)
def test_the_stores_admit_the_runner_and_it_goes_out_only_where_it_must(stack: str) -> None:
    outcome, config = declared(stack), load_stack_file(ROOT, stack)
    group = outcome.outputs["runnerSecurityGroup"]
    from_runner = {
        (rule.inputs["securityGroupId"], rule.inputs["fromPort"], rule.inputs["toPort"])
        for rule in outcome.of_type(INGRESS)
        if rule.inputs.get("referencedSecurityGroupId") == group
    }
    cache = {("network-redis-id", 6379, 6379)} if config.cache else set()
    assert from_runner == {("network-postgres-id", 5432, 5432), *cache}
    runner_group = _named(outcome, "aws:ec2/securityGroup:SecurityGroup", "runner-security-group").inputs
    assert runner_group["ingress"] == [] and not [
        r for r in outcome.of_type(INGRESS) if r.inputs["securityGroupId"] == group
    ]
    egress = {(rule["protocol"], rule["fromPort"], rule["toPort"]) for rule in runner_group["egress"]}
    heroku_redis = {("tcp", *HEROKU_REDIS_PORTS)} if config.migration.redis else set()
    assert egress == {("tcp", 443, 443), ("tcp", 5432, 5432), ("tcp", 6379, 6379), *heroku_redis}
    assert all(rule["cidrBlocks"] == ["0.0.0.0/0"] for rule in runner_group["egress"])


def test_a_common_runtime_apps_database_is_public_behind_its_addresses_alone() -> None:
    outcome, config = declared("ci"), load_stack_file(ROOT, "ci")
    assert config.reach.public
    instance = outcome.one("aws:rds/instance:Instance").inputs
    assert instance["publiclyAccessible"] is True
    # Every password on it (the master's, each role's) generated, 40 characters long.
    passwords = {p.name: p.inputs for p in outcome.of_type("random:index/randomPassword:RandomPassword")}
    assert "database-master-password" in passwords and len(passwords) == 4
    assert all(p["length"] == 40 and p["special"] is False for p in passwords.values())
    database_rules = [
        r.inputs for r in outcome.of_type(INGRESS) if r.inputs["securityGroupId"] == "network-postgres-id"
    ]
    assert {r["cidrIpv4"] for r in database_rules if "cidrIpv4" in r} == {str(c) for c in config.reach.cidrs}
    assert {r["referencedSecurityGroupId"] for r in database_rules if "referencedSecurityGroupId" in r} == {
        outcome.outputs["runnerSecurityGroup"]
    }
    # The cache's group admits none of them (ElastiCache cannot be public).
    cache_rules = [r.inputs for r in outcome.of_type(INGRESS) if r.inputs["securityGroupId"] == "network-redis-id"]
    assert not cache_rules
    public = [f"shop-ci-public-{zone}-id" for zone in config.network.availability_zones]
    assert _named(outcome, "aws:rds/subnetGroup:SubnetGroup", "network-db").inputs["subnetIds"] == public
    assert _named(outcome, "aws:elasticache/subnetGroup:SubnetGroup", "network-cache").inputs["subnetIds"] == [
        f"shop-ci-private-{zone}-id" for zone in config.network.availability_zones
    ]


@pytest.mark.parametrize("stack", ["qa", "production"])
def test_a_peered_apps_database_stays_private(stack: str) -> None:
    outcome, config = declared(stack), load_stack_file(ROOT, stack)
    assert outcome.one("aws:rds/instance:Instance").inputs["publiclyAccessible"] is False
    private = config.network.subnet_ids or [f"shop-{stack}-private-{z}-id" for z in config.network.availability_zones]
    assert _named(outcome, "aws:rds/subnetGroup:SubnetGroup", "network-db").inputs["subnetIds"] == private


def _routes(outcome: Outcome) -> dict[str, dict[str, Any]]:
    return {route.name: route.inputs for route in outcome.of_type("aws:ec2/route:Route")}


@pytest.mark.parametrize("stack", ["ci", "qa"])
def test_a_created_vpc_gives_the_runner_one_nat_gateway_out(stack: str) -> None:
    outcome, config = declared(stack), load_stack_file(ROOT, stack)
    prefix, zones = f"shop-{stack}", config.network.availability_zones
    nat = outcome.one("aws:ec2/natGateway:NatGateway").inputs
    assert nat["subnetId"] == f"{prefix}-public-{zones[0]}-id" and nat["allocationId"] == f"{prefix}-nat-id"
    assert outcome.one("aws:ec2/eip:Eip").inputs["domain"] == "vpc"
    assert outcome.one("aws:ec2/internetGateway:InternetGateway").inputs["vpcId"] == f"{prefix}-vpc-id"
    routes = _routes(outcome)
    assert routes[f"{prefix}-private-default"] == {
        "routeTableId": f"{prefix}-private-id", "destinationCidrBlock": "0.0.0.0/0", "natGatewayId": f"{prefix}-nat-id"
    }  # fmt: skip
    assert routes[f"{prefix}-public-default"] == {
        "routeTableId": f"{prefix}-public-id", "destinationCidrBlock": "0.0.0.0/0", "gatewayId": f"{prefix}-igw-id"
    }  # fmt: skip
    # The only ways to the internet: the NAT from the private subnets, the gateway from the public ones.
    assert [name for name, r in routes.items() if r["destinationCidrBlock"] == "0.0.0.0/0"] == [
        f"{prefix}-public-default", f"{prefix}-private-default"
    ]  # fmt: skip
    cidrs = {s.name: ipaddress.IPv4Network(s.inputs["cidrBlock"]) for s in outcome.of_type("aws:ec2/subnet:Subnet")}
    public = [cidrs[f"{prefix}-public-{zone}"] for zone in zones]
    private = [cidrs[f"{prefix}-private-{zone}"] for zone in zones]
    assert not any(a.overlaps(b) for a in public for b in private)
    assert all(block.subnet_of(config.network.vpc_cidr) for block in public + private)
    associations = {a.name: a.inputs["routeTableId"] for a in outcome.of_type(
        "aws:ec2/routeTableAssociation:RouteTableAssociation")}  # fmt: skip
    assert {associations[f"{prefix}-public-{zone}"] for zone in zones} == {f"{prefix}-public-id"}


def test_an_existing_vpc_is_assumed_to_have_a_way_out() -> None:
    outcome = declared("production")
    for type_ in ("natGateway:NatGateway", "eip:Eip", "internetGateway:InternetGateway", "subnet:Subnet"):
        assert not outcome.of_type(f"aws:ec2/{type_}"), type_
    assert not [r for r in _routes(outcome).values() if r["destinationCidrBlock"] == "0.0.0.0/0"]


def test_without_a_runner_nothing_of_it_is_declared() -> None:
    qa = declared("qa", **{"ferry:runner": None})
    assert not qa.of_type(RUNNER) and not qa.of_type(SECRETS) and not set(RUNNER_OUTPUTS) & set(qa.outputs)
    # A peered app needs no public side at all.
    assert not qa.of_type("aws:ec2/internetGateway:InternetGateway") and not qa.of_type("aws:ec2/natGateway:NatGateway")
    assert len(qa.of_type("aws:ec2/subnet:Subnet")) == 3
    assert not [r for r in qa.of_type(INGRESS) if r.inputs.get("referencedSecurityGroupId")]
    # A public database still gets its public subnets, but no NAT: nothing private goes out.
    ci = declared("ci", **{"ferry:runner": None})
    assert ci.one("aws:ec2/internetGateway:InternetGateway") and not ci.of_type("aws:ec2/natGateway:NatGateway")
    assert ci.one("aws:rds/instance:Instance").inputs["publiclyAccessible"] is True


def test_a_public_database_in_an_existing_vpc_uses_its_public_subnets() -> None:
    network = {"vpcId": "vpc-0ci", "subnetIds": ["subnet-private-a", "subnet-private-b"],
               "publicSubnetIds": ["subnet-public-a", "subnet-public-b"]}  # fmt: skip
    outcome = declared("ci", **{"ferry:network": network})
    assert _named(outcome, "aws:rds/subnetGroup:SubnetGroup", "network-db").inputs["subnetIds"] == [
        "subnet-public-a", "subnet-public-b"
    ]  # fmt: skip
    assert outcome.outputs["runnerSubnets"] == ["subnet-private-a", "subnet-private-b"]
    assert not outcome.of_type("aws:ec2/subnet:Subnet") and not outcome.of_type("aws:ec2/natGateway:NatGateway")


@pytest.mark.parametrize(("cidr", "zones"), [("10.61.0.0/16", 2), ("10.62.0.0/16", 3), ("10.0.0.0/24", 3)])
def test_public_blocks_never_overlap_the_private_ones(cidr: str, zones: int) -> None:
    vpc = ipaddress.IPv4Network(cidr)
    private, public = private_blocks(vpc, zones), public_blocks(vpc, zones)
    assert len(public) == len(private) == zones and len(set(public)) == zones
    assert all(block.subnet_of(vpc) for block in public)
    assert not any(a.overlaps(b) for a in public for b in private)


def test_a_vpc_too_small_for_both_sides_is_refused() -> None:
    with pytest.raises(ValueError, match="too small for 2 private and 2 public subnets"):
        public_blocks(ipaddress.IPv4Network("10.0.0.0/27"), 2)


def _load_ci(tmp_path: Path, **changes: Any) -> StackConfig:
    """Pulumi.ci.yaml with ``ferry:<key>`` replaced (``None``: removed), read as the driver reads it."""
    document = yaml.safe_load((ROOT / "Pulumi.ci.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            document["config"].pop(f"ferry:{key}")
        else:
            document["config"][f"ferry:{key}"] = value
    (tmp_path / "Pulumi.ci.yaml").write_text(yaml.safe_dump(document))
    return load_stack_file(tmp_path, "ci")


def _ci(key: str) -> Any:
    return yaml.safe_load((ROOT / "Pulumi.ci.yaml").read_text())["config"][f"ferry:{key}"]


_ROLE_STORAGE = {"buckets": [{"name": "uploads", "source": "shop-ci-uploads-heroku", "configVars": {"bucket": "S3"}}],
                 "appRole": "shop-ci-app"}  # fmt: skip
_EXISTING_VPC = {"vpcId": "vpc-0ci", "subnetIds": ["subnet-a", "subnet-b"]}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # A Common Runtime app that says nothing of how it reaches its stores (no Private Space to peer).
        ({"reach": None}, "reach: say how app shop-ci on stack ci reaches its new stores"),
        (
            {
                "reach": {"app": "public", "cidrs": ["54.172.88.16/32"]},
                "heroku": {**_ci("heroku"), "redisAddon": "redis-rigid-11112"},
                "cache": {"nodeType": "cache.t4g.micro"},
                "migration": {**_ci("migration"), "redis": True},
            },
            "the cache would be out of reach of app shop-ci on stack ci",
        ),
        ({"storage": _ROLE_STORAGE}, "the buckets would be out of reach of app shop-ci on stack ci"),
        ({"network": _EXISTING_VPC}, "give network.publicSubnetIds with network.vpcId"),
        ({"reach": {"app": "public", "cidrs": ["0.0.0.0/0"]}}, "ferry:reach.cidrs: 0.0.0.0/0 opens the database"),
        # Wide blocks that add up to the whole internet, as surely as 0.0.0.0/0.
        ({"reach": {"app": "public", "cidrs": ["0.0.0.0/1", "128.0.0.0/1"]}}, "wider than a /16"),
        (
            {"runner": {"cpu": 256, "memoryMb": 1536}},
            "memoryMb 1536 does not go with cpu 256: Fargate allows 512, 1024",
        ),
        ({"reach": {"app": "public"}}, "app: public needs cidrs"),
        ({"runner": {"cpu": 3000, "memoryMb": 4096}}, "ferry:runner: cpu must be one of 256, 512"),
        ({"runner": {"cpu": 1024, "memoryMb": 1024}}, "ferry:runner: memoryMb 1024 does not go with cpu 1024"),
        ({"runner": {**_ci("runner"), "logRetentionDays": 10}}, "ferry:runner: logRetentionDays must be one of"),
        ({"runner": {**_ci("runner"), "ephemeralStorageGb": 300}}, "ferry:runner.ephemeralStorageGb: Input should be"),
        ({"runner": {**_ci("runner"), "imageTag": "no tags/here"}}, "ferry:runner.imageTag: String should match"),
    ],
)
def test_a_target_out_of_reach_or_a_task_fargate_cannot_run_is_refused_in_one_line(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _load_ci(tmp_path, **changes)
    text = str(raised.value)
    assert text.startswith("Pulumi.ci.yaml: ") and "\n" not in text
    assert message in text, text


def test_what_is_refused_above_is_accepted_once_said(tmp_path: Path) -> None:
    # The same Common Runtime app with its public subnets named, in an existing VPC.
    config = _load_ci(tmp_path, network={**_EXISTING_VPC, "publicSubnetIds": ["subnet-c", "subnet-d"]})
    assert config.reach.public and config.network.public_subnet_ids == ["subnet-c", "subnet-d"]
    # An app in a peered Private Space needs no reach: it is implied.
    peered = _load_ci(tmp_path, reach=None, network={**_ci("network"), "peering": {
        "kind": "heroku-space", "space": "shop-ci-space", "peerCidrs": ["10.1.0.0/16"]}})  # fmt: skip
    assert peered.reach.app == "private-space" and not peered.reach.public
    runner = _load_ci(tmp_path, runner={"cpu": 256, "memoryMb": 512, "logRetentionDays": 1}).runner
    assert runner is not None and (runner.cpu, runner.memory_mb, runner.ephemeral_storage_gb) == (256, 512, 21)
