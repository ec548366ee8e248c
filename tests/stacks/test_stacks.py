"""The Pulumi program under mocks: what each example stack declares, and config errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest

from migration.errors import ConfigError
from stacks.config import load_stack_file
from stacks.database import BULK_LOAD_PARAMETERS
from tests.stacks.outcomes import declared, secret_value
from tests.support.pulumi_program import ROOT, run_program, stack_config

STACKS = ["ci", "qa", "production"]
COMPONENTS = {
    f"ferry:stacks:{kind}" for kind in ("Network", "Database", "Storage", "Cache", "Cutover", "Runner", "RunnerSecrets")
}
OPEN = {"0.0.0.0/0", "::/0"}
RUNNER, STORAGE = "ferry:stacks:Runner", "ferry:stacks:Storage"


@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_is_a_child_of_a_component(stack: str) -> None:
    outcome = declared(stack)
    components = {resource.type for resource in outcome.resources if resource.type in COMPONENTS}
    assert components >= {"ferry:stacks:Network", "ferry:stacks:Database", "ferry:stacks:Cutover"}
    for resource in outcome.resources:
        if resource.type in COMPONENTS or resource.type == "pulumi:pulumi:Stack":
            continue
        assert resource.parents and resource.parents[-1] in COMPONENTS, (resource.type, resource.name)


@pytest.mark.parametrize("stack", STACKS)
def test_encryption_is_on_everywhere(stack: str) -> None:
    outcome = declared(stack)
    instance = outcome.one("aws:rds/instance:Instance").inputs
    assert instance["storageEncrypted"] is True and instance["kmsKeyId"].startswith("arn:aws:kms:")
    assert instance["storageType"] == "gp3"
    assert outcome.one("aws:kms/key:Key").inputs["enableKeyRotation"] is True
    groups = outcome.of_type("aws:elasticache/replicationGroup:ReplicationGroup")
    assert len(groups) == (0 if stack == "ci" else 1)  # ci's Redis stays on Heroku
    for group in groups:
        assert group.inputs["atRestEncryptionEnabled"] is True and group.inputs["transitEncryptionEnabled"] is True
        assert group.inputs["authToken"]
    buckets = outcome.of_type("aws:s3/bucket:Bucket")
    encrypted = outcome.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    assert buckets and len(encrypted) == len(buckets)
    for config in encrypted:
        assert config.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms"
    force_ssl = [
        p
        for p in outcome.one("aws:rds/parameterGroup:ParameterGroup").inputs["parameters"]
        if p["name"] == "rds.force_ssl"
    ]
    assert force_ssl and force_ssl[0]["value"] == "1"


@pytest.mark.parametrize("stack", STACKS)
def test_nothing_is_public(stack: str) -> None:
    """Nothing but the database of a Common Runtime app (ci's: ``reach.app: public``) is reachable from outside."""
    outcome = declared(stack)
    assert outcome.one("aws:rds/instance:Instance").inputs["publiclyAccessible"] is (stack == "ci")
    subnets = outcome.of_type("aws:ec2/subnet:Subnet")
    # A stack given an existing VPC creates no subnet; every other one private subnet per zone, and one public
    # per zone besides for a public database or a runner's way out (every example stack has a runner).
    network = load_stack_file(ROOT, stack).network
    assert len(subnets) == (0 if network.vpc_id else 2 * len(network.availability_zones))
    for subnet in subnets:
        assert subnet.inputs["mapPublicIpOnLaunch"] is False
    blocks = outcome.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert len(blocks) == len(outcome.of_type("aws:s3/bucket:Bucket"))
    for block in blocks:
        flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
        assert all(block.inputs[flag] is True for flag in flags)
    policies = outcome.of_type("aws:s3/bucketPolicy:BucketPolicy")
    # Every bucket has its TLS-only policy; a stack file with buckets must declare some.
    assert len(policies) == len(outcome.of_type("aws:s3/bucket:Bucket"))
    assert bool(policies) == ("ferry:storage" in yaml_config(stack))
    for policy in policies:
        statement = json.loads(policy.inputs["policy"])["Statement"][0]
        assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("stack", STACKS)
def test_security_groups_admit_only_named_networks(stack: str) -> None:
    outcome = declared(stack)
    rules = outcome.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert rules
    for rule in rules:
        inputs = rule.inputs
        assert (inputs["fromPort"], inputs["toPort"]) in ((5432, 5432), (6379, 6379))
        assert inputs.get("cidrIpv4") not in OPEN and inputs.get("cidrIpv6") not in OPEN
        assert inputs.get("cidrIpv4") or inputs.get("cidrIpv6") or inputs.get("referencedSecurityGroupId")
    groups = [g for g in outcome.of_type("aws:ec2/securityGroup:SecurityGroup") if g.parents[-1] != RUNNER]
    assert len(groups) == 2  # the database's and the cache's; the runner's goes out (tests/stacks/test_runner.py)
    for group in groups:
        assert group.inputs.get("egress", []) == []
    stack_file = load_stack_file(ROOT, stack)
    config = stack_file.network
    expected = {str(cidr) for cidr in config.allowed_cidrs} | {
        str(cidr) for cidr in (config.peering.peer_cidrs if config.peering else [])
    }
    # A Common Runtime app's own addresses reach its database, and its database only.
    by_app = {str(cidr) for cidr in stack_file.reach.cidrs}
    admitted = {
        port: {rule.inputs.get("cidrIpv4") for rule in rules if rule.inputs["fromPort"] == port} - {None}
        for port in (5432, 6379)
    }
    assert admitted == {5432: expected | by_app, 6379: expected}
    assert bool(by_app) == (stack == "ci")


def test_a_created_vpc_spans_the_configured_zones() -> None:
    outcome = declared("qa")
    vpc = outcome.one("aws:ec2/vpc:Vpc").inputs
    assert vpc["enableDnsHostnames"] is True and vpc["enableDnsSupport"] is True
    zones = {subnet.inputs["availabilityZone"] for subnet in outcome.of_type("aws:ec2/subnet:Subnet")}
    assert zones == {"us-east-1a", "us-east-1b", "us-east-1c"}
    assert len(outcome.one("aws:rds/subnetGroup:SubnetGroup").inputs["subnetIds"]) == 3


def test_an_existing_vpc_is_used_as_given() -> None:
    outcome = declared("production")
    assert not outcome.of_type("aws:ec2/vpc:Vpc") and not outcome.of_type("aws:ec2/subnet:Subnet")
    assert outcome.outputs["vpcId"] == "vpc-0aa11bb22cc33dd44"
    assert (
        outcome.one("aws:rds/subnetGroup:SubnetGroup").inputs["subnetIds"]
        == load_stack_file(ROOT, "production").network.subnet_ids
    )


def test_production_protections_are_on_and_ci_stays_small() -> None:
    production = declared("production").one("aws:rds/instance:Instance").inputs
    assert production["deletionProtection"] is True
    assert production["skipFinalSnapshot"] is False and production["finalSnapshotIdentifier"] == "shop-production-final"
    assert production["multiAz"] is True and production["backupRetentionPeriod"] == 14
    assert production["performanceInsightsEnabled"] is True and production["performanceInsightsKmsKeyId"]
    assert production["enabledCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    assert production["maxAllocatedStorage"] == 2000
    cache = declared("production").one("aws:elasticache/replicationGroup:ReplicationGroup").inputs
    assert cache["automaticFailoverEnabled"] is True and cache["numCacheClusters"] == 3

    ci = declared("ci").one("aws:rds/instance:Instance").inputs
    assert ci["deletionProtection"] is False and ci["skipFinalSnapshot"] is True
    # A cache on ci (its Redis kept on Heroku) fails over to its replica only when told to.
    with_cache = declared("ci", **{"ferry:cache": {"nodeType": "cache.t4g.micro", "replicas": 1}})
    assert (
        with_cache.one("aws:elasticache/replicationGroup:ReplicationGroup").inputs["automaticFailoverEnabled"] is False
    )


#: qa peered with a VPC of ours (both sides accepted here), its app running in AWS behind a bastion.
QA_PEERED_WITH_OUR_VPC = {
    "ferry:reach": {"app": "vpc"},
    "ferry:network": {
        "vpcCidr": "10.62.0.0/16",
        "availabilityZones": ["us-east-1a", "us-east-1b", "us-east-1c"],
        "allowedSecurityGroupIds": ["sg-0a1b2c3d4e5f60718"],
        "peering": {
            "kind": "vpc",
            "peerVpcId": "vpc-0f1e2d3c4b5a69788",
            "peerOwnerId": "123456789012",
            "peerCidrs": ["10.10.0.0/16"],
            "peerRouteTableIds": ["rtb-0123456789abcdef0", "rtb-0fedcba9876543210"],
        },
    },
}


def test_vpc_peering_routes_both_ways_when_both_sides_are_ours() -> None:
    outcome = declared("qa", **QA_PEERED_WITH_OUR_VPC)
    connection = outcome.one("aws:ec2/vpcPeeringConnection:VpcPeeringConnection").inputs
    assert connection["peerVpcId"] == "vpc-0f1e2d3c4b5a69788"
    assert outcome.one("aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter").inputs["autoAccept"] is True
    routes = outcome.of_type("aws:ec2/route:Route")
    there = [r for r in routes if r.inputs["destinationCidrBlock"] == "10.10.0.0/16"]
    back = [r for r in routes if r.inputs["destinationCidrBlock"] == "10.62.0.0/16"]
    assert len(there) == 1 and there[0].inputs["routeTableId"] == "shop-qa-private-id"
    assert {r.inputs["routeTableId"] for r in back} == {"rtb-0123456789abcdef0", "rtb-0fedcba9876543210"}
    assert all(r.inputs["vpcPeeringConnectionId"] == "network-peering-id" for r in there + back)
    options = outcome.one("aws:ec2/peeringConnectionOptions:PeeringConnectionOptions").inputs
    assert options["requester"]["allowRemoteVpcDnsResolution"] is True


def test_heroku_private_space_peering_is_accepted_on_heroku() -> None:
    outcome = declared("production")
    connection = outcome.one("aws:ec2/vpcPeeringConnection:VpcPeeringConnection").inputs
    assert (connection["peerVpcId"], connection["peerOwnerId"]) == ("vpc-0heroku0space0001", "847227832372")
    accepter = outcome.one("heroku:space/peeringConnectionAccepter:PeeringConnectionAccepter").inputs
    assert accepter == {"space": "shop-space", "vpcPeeringConnectionId": "network-peering-id"}
    destinations = {r.inputs["destinationCidrBlock"] for r in outcome.of_type("aws:ec2/route:Route")}
    assert destinations == {"10.0.0.0/16", "172.17.0.0/16"}
    assert "heroku:space/getPeeringInfo:getPeeringInfo" in outcome.invokes


@pytest.mark.parametrize("stack", STACKS)
def test_connection_urls_are_secret_outputs(stack: str) -> None:
    outcome = declared(stack)
    cached = stack != "ci"  # ci's Redis stays on Heroku: no cache, no redis outputs
    assert {"databaseUrls", "databaseOwnerUrls", "databaseReadonlyUrls"} <= outcome.secret_outputs
    assert ("redisUrl" in outcome.secret_outputs) == cached and ("redisUrl" in outcome.outputs) == cached
    assert outcome.outputs["databaseUrls"]["shop"].startswith("postgres://shop_app:generated")
    plain = json.dumps({k: v for k, v in outcome.outputs.items() if k not in outcome.secret_outputs})
    assert "generated" not in plain  # no password leaks into a plain output
    for key in (
        "databaseEndpoint",
        "databasePort",
        "databaseNames",
        "databaseRoles",
        "bucketNames",
        "bucketArns",
        *(["redisEndpoint"] if cached else []),
    ):
        assert outcome.outputs[key], key
    instance = outcome.one("aws:rds/instance:Instance").inputs
    assert secret_value(instance["password"]) == "generateddatabasemasterpasswordxxxxxxxx"
    for group in outcome.of_type("aws:elasticache/replicationGroup:ReplicationGroup"):
        assert secret_value(group.inputs["authToken"])


def test_parameter_group_profiles_follow_migration_loading() -> None:
    def parameters(loading: bool) -> dict[str, str]:
        group = declared("qa", **{"ferry:migration": {"loading": loading}}).one("aws:rds/parameterGroup:ParameterGroup")
        assert group.inputs["family"] == "postgres15"
        return {p["name"]: p["value"] for p in group.inputs["parameters"]}

    loading, normal = parameters(True), parameters(False)
    # The switch ends the profile by an update in place: nothing that replaces the group differs.
    groups = [
        declared("qa", **{"ferry:migration": {"loading": on}}).one("aws:rds/parameterGroup:ParameterGroup").inputs
        for on in (True, False)
    ]
    fixed = ("family", "description", "namePrefix", "name")
    loading_group, normal_group = ({k: g.get(k) for k in fixed} for g in groups)
    assert loading_group == normal_group and loading_group["description"]
    assert all(p["applyMethod"] == "immediate" for g in groups for p in g["parameters"])
    assert BULK_LOAD_PARAMETERS.items() <= loading.items()
    assert loading["synchronous_commit"] == "off" and loading["autovacuum"] == "0"
    assert not set(BULK_LOAD_PARAMETERS) & set(normal)
    assert normal["rds.force_ssl"] == "1"


def test_each_database_gets_owner_app_and_readonly_roles() -> None:
    outcome = declared("qa")
    roles = {r.inputs["name"]: r.inputs for r in outcome.of_type("postgresql:index/role:Role")}
    assert set(roles) == {f"{db}_{kind}" for db in ("shop", "shop_reports") for kind in ("owner", "app", "readonly")}
    databases = {d.inputs["name"]: d.inputs["owner"] for d in outcome.of_type("postgresql:index/database:Database")}
    assert databases == {"shop": "shop_owner", "shop_reports": "shop_reports_owner"}
    grants = {
        (g.inputs["database"], g.inputs["role"], g.inputs["objectType"]): set(g.inputs["privileges"])
        for g in outcome.of_type("postgresql:index/grant:Grant")
    }
    assert {"INSERT", "UPDATE", "DELETE"} <= grants[("shop", "shop_app", "table")]
    assert grants[("shop", "shop_readonly", "table")] == {"SELECT"}
    defaults = {
        (d.inputs["database"], d.inputs["role"], d.inputs["objectType"]): (
            d.inputs["owner"],
            set(d.inputs["privileges"]),
        )
        for d in outcome.of_type("postgresql:index/defaultPrivileges:DefaultPrivileges")
    }
    assert defaults[("shop_reports", "shop_reports_readonly", "table")] == ("shop_reports_owner", {"SELECT"})
    provider = outcome.one("pulumi:providers:postgresql").inputs
    assert provider["sslmode"] == "require" and provider["superuser"] == "false"


def test_storage_names_buckets_by_convention_with_least_privilege() -> None:
    outcome = declared("production")
    # The app's buckets; the runner's state bucket is the runner's (tests/stacks/test_runner.py).
    buckets = {b.inputs["bucket"] for b in outcome.of_type("aws:s3/bucket:Bucket") if b.parents[-1] == STORAGE}
    assert buckets == {"shop-production-uploads", "shop-production-exports"}
    versioning = [v for v in outcome.of_type("aws:s3/bucketVersioning:BucketVersioning") if v.parents[-1] == STORAGE]
    assert {v.inputs["versioningConfiguration"]["status"] for v in versioning} == {"Enabled"} and len(versioning) == 2
    lifecycle = [
        rules.inputs["rules"][0]
        for rules in outcome.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    ]
    assert len(lifecycle) == 3  # the app's two and the state bucket
    assert all(rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 7 for rule in lifecycle)
    statements = json.loads(outcome.one("aws:iam/policy:Policy").inputs["policy"])["Statement"]
    resources = {resource for statement in statements for resource in statement["Resource"]}
    assert resources == {f"arn:aws:s3:::{b}{suffix}" for b in buckets for suffix in ("", "/*")}
    actions = {action for statement in statements for action in statement["Action"]}
    assert not any("*" in action for action in actions)
    exports = next(s for s in statements if s["Sid"] == "ObjectsExports")
    assert "s3:PutObject" not in exports["Action"] and "s3:GetObject" in exports["Action"]
    uploads = next(s for s in statements if s["Sid"] == "ObjectsUploads")
    assert "s3:PutObject" in uploads["Action"]
    assert outcome.one("aws:iam/userPolicyAttachment:UserPolicyAttachment").inputs["user"] == "shop-production-app"


def test_an_existing_bucket_is_imported_and_retained(monkeypatch: pytest.MonkeyPatch) -> None:
    recorded: list[pulumi.ResourceOptions] = []
    original = pulumi.CustomResource.__init__

    def spy(
        self: pulumi.CustomResource, t: str, name: str, props: Any = None, opts: Any = None, *args: Any, **kwargs: Any
    ) -> None:
        if t == "aws:s3/bucket:Bucket" and opts is not None:
            recorded.append(opts)
        original(self, t, name, props, opts, *args, **kwargs)

    monkeypatch.setattr(pulumi.CustomResource, "__init__", spy)
    run_program("production", stack_config("production"))
    by_import = {opts.import_: opts.retain_on_delete for opts in recorded}
    assert by_import == {"shop-production-uploads": True, None: False}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ferry:databse": {}}, "ferry:databse is not a known setting"),
        ({"ferry:cutover": "done"}, "ferry:cutover: Input should be 'pending', 'aliased', 'switched' or 'rolled_back'"),
        (
            {
                "ferry:network": {
                    "vpcCidr": "10.0.0.0/16",
                    "availabilityZones": ["a", "b"],
                    "allowedCidrs": ["0.0.0.0/0"],
                }
            },
            "ferry:network.allowedCidrs: 0.0.0.0/0 would admit the whole internet",
        ),
        (
            {"ferry:network": {"availabilityZones": ["us-east-1a"], "allowedCidrs": ["10.0.0.0/8"]}},
            "ferry:network: availabilityZones needs at least two zones",
        ),
        ({"ferry:database": {"databases": ["shop"]}}, "ferry:database.instanceClass: Field required"),
        (
            {"ferry:database": {"instanceClass": "db.t4g.micro", "databases": ["Shop-DB"]}},
            "ferry:database.databases: 'Shop-DB' is not a plain lower-case identifier",
        ),
        (
            {"ferry:database": {"instanceClass": "db.t4g.micro", "databases": ["shop"], "allocatedStorageGb": "lots"}},
            "ferry:database.allocatedStorageGb: Input should be a valid integer",
        ),
        ({"ferry:storage": {"buckets": [{"name": "a"}]}}, "give exactly one of appUser or appRole"),
        (
            {"ferry:heroku": {"app": "x", "databaseAddon": "y", "rollbackAlias": "DATABASE"}},
            "ferry:heroku.rollbackAlias: 'DATABASE' is not a usable attachment name",
        ),
        ({"aws:region": ""}, "aws:region is required"),
        (
            {"ferry:storage": {"buckets": [{"name": "uploads", "source": "old-uploads"}], "appUser": "shop-ci-app"}},
            "migration.s3 moves bucket uploads but nothing says which config variables point the app at it",
        ),
        (
            {
                "ferry:storage": {
                    "buckets": [
                        {"name": "uploads", "configVars": {"bucket": "B", "accessKeyId": "K", "secretAccessKey": "S"}}
                    ],
                    "appRole": "shop-ci-app",
                }
            },
            "ferry:storage: buckets.uploads.configVars: an access key pair needs appUser",
        ),
        (
            {"ferry:migration": {"capture": True, "catchUpSeconds": 0}},
            "ferry:migration.catchUpSeconds: Input should be greater than or equal to 1",
        ),
        (
            {"ferry:migration": {"freeze": "fence"}},
            "ferry:migration: freeze: fence needs capture: true",
        ),
        (
            {"ferry:migration": {"redis": False, "redisCopy": "scan"}},
            "ferry:migration: redisCopy says how Redis moves: it needs redis: true",
        ),
        (
            {"ferry:migration": {"redisCopy": "bogus"}},
            "ferry:migration.redisCopy: Input should be 'live', 'scan' or 'replicaof'",
        ),
    ],
)
def test_invalid_config_fails_before_any_resource_naming_the_key(overrides: dict[str, Any], message: str) -> None:
    config = stack_config("ci", overrides)
    with pytest.raises(pulumi.RunError) as raised:
        run_program("ci", config)
    assert message in str(raised.value)
    assert str(raised.value).startswith("Pulumi.ci.yaml: ")
    assert "\n" not in str(raised.value)


def test_production_refuses_to_drop_its_protections() -> None:
    database = {**yaml_config("production")["ferry:database"], "deletionProtection": False, "finalSnapshot": False}
    with pytest.raises(
        pulumi.RunError, match=r"production must keep database.deletionProtection, database.finalSnapshot on"
    ):
        run_program("production", stack_config("production", {"ferry:database": database}))


def yaml_config(stack: str) -> dict[str, Any]:
    return {key: json.loads(value) if value[:1] in "{[" else value for key, value in stack_config(stack).items()}


def test_the_driver_reads_the_same_file_and_names_bad_files(tmp_path: Path) -> None:
    for stack in STACKS:
        config = load_stack_file(ROOT, stack)
        assert config.stack == stack and config.aws_region == "us-east-1"
    with pytest.raises(ConfigError, match=r"^Pulumi.staging.yaml: no such stack file"):
        load_stack_file(tmp_path, "staging")
    (tmp_path / "Pulumi.bad.yaml").write_text("config: [unclosed\n")
    with pytest.raises(ConfigError, match=r"^Pulumi.bad.yaml: not valid YAML"):
        load_stack_file(tmp_path, "bad")
    (tmp_path / "Pulumi.typo.yaml").write_text(
        (ROOT / "Pulumi.ci.yaml").read_text().replace("instanceClass", "instanceClas")
    )
    with pytest.raises(ConfigError, match=r"ferry:database.instanceClass: Field required"):
        load_stack_file(tmp_path, "typo")


def test_program_and_stacks_type_check_and_misspelled_arguments_fail(tmp_path: Path) -> None:
    misspelled = tmp_path / "misspelled.py"
    misspelled.write_text(
        "import pulumi_aws as aws\n\naws.rds.Instance('db', storage_encryptd=True, instance_class='db.t4g.micro')\n"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "stacks", "__main__.py", str(misspelled)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [line for line in checked.stdout.splitlines() if ": error:" in line]
    assert errors, checked.stdout
    # Only the misspelled file fails (mypy's cache may remember it under an older temporary path).
    assert all(line.split(":")[0].endswith("misspelled.py") for line in errors), "\n".join(errors)
    assert any('"storage_encryptd"' in line for line in errors)


@pytest.mark.parametrize(
    ("given", "freeze"),
    [
        ({"capture": True}, "fence"),  # reads go on: the fence is what capture is for
        ({"capture": True, "s3": True}, "fence"),  # S3 is not frozen: uploads are synced after the switch
        ({"capture": True, "freeze": "read-only"}, "read-only"),  # said outright: kept
        ({}, "maintenance"),
    ],
)
def test_the_freeze_defaults_to_the_fence_with_capture(given: dict[str, Any], freeze: str) -> None:
    from migration.stackconfig import MigrationConfig

    assert MigrationConfig.model_validate(given).freeze == freeze


def test_a_cache_followed_back_gets_keyspace_notifications() -> None:
    """With the follow back (capture, Redis moved), the cache's parameter group says ``notify-keyspace-events``;
    without it, the default parameter group is kept."""
    migration = {**yaml_config("qa")["ferry:migration"], "capture": True, "freeze": "fence"}
    outcome = declared("qa", **{"ferry:migration": migration})
    (parameters,) = outcome.of_type("aws:elasticache/parameterGroup:ParameterGroup")
    assert parameters.inputs["family"] == "redis7"
    assert parameters.inputs["parameters"] == [{"name": "notify-keyspace-events", "value": "KEA"}]
    group = outcome.one("aws:elasticache/replicationGroup:ReplicationGroup").inputs
    assert group["parameterGroupName"]
    off = declared("qa", **{"ferry:migration": {**migration, "reverse": False}})
    assert off.of_type("aws:elasticache/parameterGroup:ParameterGroup") == []
    assert "parameterGroupName" not in off.one("aws:elasticache/replicationGroup:ReplicationGroup").inputs
