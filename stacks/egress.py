"""The public side of a VPC the stack creates: public subnets behind an internet gateway, and a NAT gateway
for the private subnets' way out.

Declared by :class:`stacks.network.Network` only when something needs it: a database a Common Runtime app
reaches publicly (``reach.app: public``) puts its subnet group here; a runner task in the private subnets
goes out through the NAT gateway (to Heroku's stores, ECR, CloudWatch Logs and Secrets Manager).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

__all__ = ["OPEN_ROUTE", "PRIVATE_PREFIX_STEP", "declare_public_side", "private_blocks", "public_blocks"]

#: The destination of a default route.
OPEN_ROUTE = "0.0.0.0/0"
#: A private subnet is the VPC's CIDR four bits longer (a /20 of a /16): room for RDS, its standby and the cache.
PRIVATE_PREFIX_STEP = 4
_SMALLEST_PREFIX = 28  # AWS's smallest subnet


def private_blocks(vpc_cidr: ipaddress.IPv4Network, zones: int) -> list[ipaddress.IPv4Network]:
    """The private subnets' CIDRs, one per zone, from the start of the VPC's range.

    :param vpc_cidr: the VPC's CIDR. :param zones: how many zones get one.
    """
    blocks = vpc_cidr.subnets(new_prefix=min(vpc_cidr.prefixlen + PRIVATE_PREFIX_STEP, _SMALLEST_PREFIX))
    return [block for _, block in zip(range(zones), blocks, strict=False)]


def public_blocks(vpc_cidr: ipaddress.IPv4Network, zones: int) -> list[ipaddress.IPv4Network]:
    """The public subnets' CIDRs, one per zone, from the end of the VPC's range so that no private block
    (:func:`private_blocks`, from its start) ever overlaps one.

    Smaller than the private blocks where they fit in the last of them: the NAT gateway and the database's
    network interfaces are all a public subnet holds.

    :param vpc_cidr: the VPC's CIDR. :param zones: how many zones get one.
    :raises ValueError: the VPC is too small for both.
    """
    private = private_blocks(vpc_cidr, zones)
    size = private[0].prefixlen
    last = list(vpc_cidr.subnets(new_prefix=size))
    carved = list(last[-1].subnets(new_prefix=min(size + PRIVATE_PREFIX_STEP, _SMALLEST_PREFIX)))
    candidates = carved[:zones] if len(carved) >= zones else last[-zones:]
    if len(candidates) < zones or any(block.overlaps(taken) for block in candidates for taken in private):
        raise ValueError(f"network.vpcCidr {vpc_cidr} is too small for {zones} private and {zones} public subnets")
    return candidates


def declare_public_side(
    *,
    prefix: str,
    vpc_id: pulumi.Input[str],
    vpc_cidr: ipaddress.IPv4Network,
    zones: Sequence[str],
    private_route_table_id: pulumi.Input[str],
    nat: bool,
    tags: Mapping[str, str],
    parent: pulumi.Resource,
) -> list[pulumi.Output[str]]:
    """Public subnets (one per zone) routed to an internet gateway; with *nat*, a NAT gateway in the first and
    the private route table's default route through it. Returns the public subnets' ids.

    :param prefix: resource name prefix (``app-stack``). :param vpc_id: the created VPC.
    :param vpc_cidr: its CIDR. :param zones: the availability zones of its private subnets.
    :param private_route_table_id: the private subnets' route table, which gets the default route to the NAT.
    :param nat: a runner task in the private subnets needs a way out.
    :param parent: the component the resources belong to.
    """
    child = pulumi.ResourceOptions(parent=parent)
    gateway = aws.ec2.InternetGateway(
        f"{prefix}-igw", vpc_id=vpc_id, tags={**tags, "Name": f"{prefix}-igw"}, opts=child
    )
    table = aws.ec2.RouteTable(f"{prefix}-public", vpc_id=vpc_id, tags={**tags, "Name": f"{prefix}-public"}, opts=child)
    aws.ec2.Route(
        f"{prefix}-public-default",
        route_table_id=table.id,
        destination_cidr_block=OPEN_ROUTE,
        gateway_id=gateway.id,
        opts=child,
    )
    subnet_ids: list[pulumi.Output[str]] = []
    for zone, block in zip(zones, public_blocks(vpc_cidr, len(zones)), strict=True):
        subnet = aws.ec2.Subnet(
            f"{prefix}-public-{zone}",
            vpc_id=vpc_id,
            cidr_block=str(block),
            availability_zone=zone,
            # Nothing launched here gets an address unasked: only the NAT's EIP and a database asked to be public.
            map_public_ip_on_launch=False,
            tags={**tags, "Name": f"{prefix}-public-{zone}"},
            opts=child,
        )
        aws.ec2.RouteTableAssociation(
            f"{prefix}-public-{zone}", subnet_id=subnet.id, route_table_id=table.id, opts=child
        )
        subnet_ids.append(subnet.id)
    if nat:
        address = aws.ec2.Eip(f"{prefix}-nat", domain="vpc", tags={**tags, "Name": f"{prefix}-nat"}, opts=child)
        # One gateway, not one per zone: a runner's task is short-lived and the copy retries; a zone's outage
        # stops the run, which resumes, rather than paying for idle gateways between runs.
        gateway_nat = aws.ec2.NatGateway(
            f"{prefix}-nat",
            allocation_id=address.id,
            subnet_id=subnet_ids[0],
            tags={**tags, "Name": f"{prefix}-nat"},
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[gateway]),
        )
        aws.ec2.Route(
            f"{prefix}-private-default",
            route_table_id=private_route_table_id,
            destination_cidr_block=OPEN_ROUTE,
            nat_gateway_id=gateway_nat.id,
            opts=child,
        )
    return subnet_ids
