"""Network: the VPC (existing or new), subnet groups, security groups and peering to the source; the public
side of a created VPC (:mod:`stacks.egress`) when a public database or a runner task needs one."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumiverse_heroku as heroku

from stacks.config import NetworkConfig, PeeringConfig
from stacks.egress import declare_public_side, private_blocks

__all__ = ["POSTGRES_PORT", "REDIS_PORT", "Network", "NetworkArgs"]

POSTGRES_PORT = 5432
REDIS_PORT = 6379


@dataclass(frozen=True)
class NetworkArgs:
    """:param prefix: resource name prefix (``app-stack``). :param config: the ``network`` settings.
    :param public_cidrs: ``reach.cidrs`` of a Common Runtime app (``reach.app: public``): the database goes into
        public subnets and admits these besides what it admits anyway; empty: the database stays private.
    :param runner_egress: a runner task runs in the private subnets: a created VPC gets a NAT gateway.
    """

    prefix: str
    config: NetworkConfig
    tags: Mapping[str, str]
    public_cidrs: Sequence[ipaddress.IPv4Network] = ()
    runner_egress: bool = False


class Network(pulumi.ComponentResource):
    """Private subnets in two or more zones, security groups that admit only named networks,
    and VPC peering (with routes both ways) to the Heroku Private Space or VPC of the source.

    A created VPC gets public subnets behind an internet gateway when the database is public or a runner
    runs in it, and then, for the runner, a NAT gateway that its private subnets route the internet through.
    An existing VPC (``vpcId``) is used as it is: its private subnets (``subnetIds``) are assumed to have a way
    out already (a NAT gateway or the VPC endpoints for ECR, S3, CloudWatch Logs and Secrets Manager, plus a
    route to Heroku's stores), and a public database goes into its ``publicSubnetIds``.
    """

    vpc_id: pulumi.Output[str]
    #: Where the private resources live: the cache, a private database and the runner's tasks.
    private_subnet_ids: list[pulumi.Input[str]]
    #: Routed to an internet gateway: a public database's subnets; empty when nothing needs them.
    public_subnet_ids: list[pulumi.Input[str]]
    db_subnet_group_name: pulumi.Output[str]
    cache_subnet_group_name: pulumi.Output[str]
    database_security_group_id: pulumi.Output[str]
    cache_security_group_id: pulumi.Output[str]
    peering_connection_id: pulumi.Output[str] | None

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ferry:stacks:Network", name, None, opts)
        self._args, self._name = args, name
        config = args.config
        subnet_ids, route_table_ids = self._vpc_and_subnets()
        self.private_subnet_ids = subnet_ids
        public = bool(args.public_cidrs)

        self.db_subnet_group_name = aws.rds.SubnetGroup(
            f"{name}-db",
            name=f"{args.prefix}-db",
            subnet_ids=self.public_subnet_ids if public else subnet_ids,
            tags=dict(args.tags),
            opts=self._child(),
        ).name
        self.cache_subnet_group_name = aws.elasticache.SubnetGroup(
            f"{name}-cache",
            name=f"{args.prefix}-cache",
            subnet_ids=subnet_ids,
            tags=dict(args.tags),
            opts=self._child(),
        ).name

        peer_cidrs = list(config.peering.peer_cidrs) if config.peering else []
        admitted = list(dict.fromkeys([*config.allowed_cidrs, *peer_cidrs]))
        # The app's own addresses reach the database alone: ElastiCache cannot be public, so the cache never does.
        by_app = list(dict.fromkeys([*admitted, *args.public_cidrs]))
        self.database_security_group_id = self._security_group(f"{name}-postgres", POSTGRES_PORT, by_app)
        self.cache_security_group_id = self._security_group(f"{name}-redis", REDIS_PORT, admitted)

        self.peering_connection_id = (
            self._peering(f"{name}-peering", config.peering, route_table_ids) if config.peering else None
        )
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "public_subnet_ids": self.public_subnet_ids,
                "db_subnet_group_name": self.db_subnet_group_name,
                "cache_subnet_group_name": self.cache_subnet_group_name,
                "database_security_group_id": self.database_security_group_id,
                "cache_security_group_id": self.cache_security_group_id,
                "peering_connection_id": self.peering_connection_id,
            }
        )

    def _child(
        self, depends_on: Sequence[pulumi.Resource] = (), provider: pulumi.ProviderResource | None = None
    ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, depends_on=list(depends_on), provider=provider)

    def _vpc_and_subnets(self) -> tuple[list[pulumi.Input[str]], list[pulumi.Input[str]]]:
        args = self._args
        config, prefix, tags = args.config, args.prefix, dict(args.tags)
        if config.vpc_id:
            self.vpc_id = pulumi.Output.from_input(config.vpc_id)
            self.public_subnet_ids = list(config.public_subnet_ids)
            return list(config.subnet_ids), list(config.route_table_ids)

        vpc = aws.ec2.Vpc(
            f"{prefix}-vpc",
            cidr_block=str(config.vpc_cidr),
            enable_dns_support=True,
            enable_dns_hostnames=True,
            tags={**tags, "Name": prefix},
            opts=self._child(),
        )
        self.vpc_id = vpc.id
        route_table = aws.ec2.RouteTable(
            f"{prefix}-private", vpc_id=vpc.id, tags={**tags, "Name": f"{prefix}-private"}, opts=self._child()
        )
        # One /20 per zone: room for RDS, its standby and the cache nodes, leaving the rest of the VPC free.
        blocks = private_blocks(config.vpc_cidr, len(config.availability_zones))
        subnet_ids: list[pulumi.Input[str]] = []
        for zone, block in zip(config.availability_zones, blocks, strict=False):
            subnet = aws.ec2.Subnet(
                f"{prefix}-private-{zone}",
                vpc_id=vpc.id,
                cidr_block=str(block),
                availability_zone=zone,
                map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{prefix}-private-{zone}"},
                opts=self._child(),
            )
            aws.ec2.RouteTableAssociation(
                f"{prefix}-private-{zone}", subnet_id=subnet.id, route_table_id=route_table.id, opts=self._child()
            )
            subnet_ids.append(subnet.id)
        self.public_subnet_ids = []
        if args.public_cidrs or args.runner_egress:
            zones = config.availability_zones[: len(subnet_ids)]
            public_side = declare_public_side(
                prefix=prefix, vpc_id=vpc.id, vpc_cidr=config.vpc_cidr, zones=zones,
                private_route_table_id=route_table.id, nat=args.runner_egress, tags=tags, parent=self,
            )  # fmt: skip
            self.public_subnet_ids = list(public_side)
        return subnet_ids, [route_table.id]

    def admit_group(self, source: str, group_id: pulumi.Input[str], *, cache: bool) -> None:
        """Admit a security group of this stack's (the runner's tasks) to the database's port, and to the
        cache's when there is a cache to reach.

        :param source: what the group is, for the rules' names (``runner``).
        :param group_id: the security group admitted. :param cache: admit it to the cache's port too.
        """
        targets = [("postgres", self.database_security_group_id, POSTGRES_PORT)]
        if cache:
            targets.append(("redis", self.cache_security_group_id, REDIS_PORT))
        for label, target, port in targets:
            aws.vpc.SecurityGroupIngressRule(
                f"{self._name}-{label}-from-{source}",
                security_group_id=target,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                referenced_security_group_id=group_id,
                description=f"port {port} from ferry's {source}",
                opts=self._child(),
            )

    def _security_group(
        self, name: str, port: int, cidrs: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]
    ) -> pulumi.Output[str]:
        group = aws.ec2.SecurityGroup(
            name,
            vpc_id=self.vpc_id,
            description=f"{self._args.prefix}: port {port} from named networks only",
            egress=[],  # the servers never open connections out; AWS's default allow-all egress is removed
            tags=dict(self._args.tags),
            opts=self._child(),
        )
        for cidr in cidrs:
            is_v4 = isinstance(cidr, ipaddress.IPv4Network)
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-from-{cidr}",
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                cidr_ipv4=str(cidr) if is_v4 else None,
                cidr_ipv6=None if is_v4 else str(cidr),
                description=f"port {port} from {cidr}",
                opts=self._child(),
            )
        for source_group in self._args.config.allowed_security_group_ids:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-from-{source_group}",
                security_group_id=group.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                referenced_security_group_id=source_group,
                description=f"port {port} from {source_group}",
                opts=self._child(),
            )
        return group.id

    def _peering(
        self, name: str, peering: PeeringConfig, route_table_ids: Sequence[pulumi.Input[str]]
    ) -> pulumi.Output[str]:
        tags = dict(self._args.tags)
        if peering.kind == "heroku-space":
            assert peering.space is not None  # checked by PeeringConfig
            info = heroku.space.get_peering_info_output(
                name=peering.space, opts=pulumi.InvokeOutputOptions(parent=self)
            )
            peer: tuple[pulumi.Input[str] | None, ...] = (info.vpc_id, info.aws_account_id, info.aws_region)
        else:
            peer = (peering.peer_vpc_id, peering.peer_owner_id, peering.peer_region)
        connection = aws.ec2.VpcPeeringConnection(
            name,
            vpc_id=self.vpc_id,
            peer_vpc_id=peer[0],
            peer_owner_id=peer[1],
            peer_region=peer[2],
            tags={**tags, "Name": name},
            opts=self._child(),
        )
        accepted: pulumi.Resource = connection
        if peering.kind == "heroku-space":
            # Heroku adds the route back to our VPC in the space's own route tables on acceptance.
            accepted = heroku.space.PeeringConnectionAccepter(
                name, space=peering.space, vpc_peering_connection_id=connection.id, opts=self._child()
            )
        elif peering.both_sides_ours:
            peer_side = self._peer_side_options(name, peering)
            accepted = aws.ec2.VpcPeeringConnectionAccepter(
                name,
                vpc_peering_connection_id=connection.id,
                auto_accept=True,
                tags={**tags, "Name": name},
                opts=peer_side,
            )
            for index, peer_table in enumerate(peering.peer_route_table_ids):
                aws.ec2.Route(
                    f"{name}-back-{index}",
                    route_table_id=peer_table,
                    destination_cidr_block=str(self._args.config.vpc_cidr),
                    vpc_peering_connection_id=connection.id,
                    opts=pulumi.ResourceOptions.merge(peer_side, pulumi.ResourceOptions(depends_on=[accepted])),
                )
        for table_index, table in enumerate(route_table_ids):
            for cidr in peering.peer_cidrs:
                aws.ec2.Route(
                    f"{name}-to-{cidr}-{table_index}",
                    route_table_id=table,
                    destination_cidr_block=str(cidr),
                    vpc_peering_connection_id=connection.id,
                    opts=self._child(depends_on=[accepted]),
                )
        aws.ec2.PeeringConnectionOptions(
            name,
            vpc_peering_connection_id=connection.id,
            requester=aws.ec2.PeeringConnectionOptionsRequesterArgs(allow_remote_vpc_dns_resolution=True),
            opts=self._child(depends_on=[accepted]),
        )
        return connection.id

    def _peer_side_options(self, name: str, peering: PeeringConfig) -> pulumi.ResourceOptions:
        """Resources in the peer VPC need a provider in its region when it differs from ours."""
        if not peering.peer_region:
            return self._child()
        provider = aws.Provider(f"{name}-peer-region", region=peering.peer_region, opts=self._child())
        return self._child(provider=provider)
