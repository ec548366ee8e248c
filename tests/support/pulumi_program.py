"""Run ``__main__.py`` under Pulumi's mocks, as ``pulumi up`` would, and record what it declares.

Each run gets a fresh ``contextvars`` context and its own event loop, so Pulumi's global
settings (config, root stack, monitor) never leak from one test into the next.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import runpy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi.runtime
import yaml
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs
from pulumi.runtime.stack import wait_for_rpcs

ROOT = Path(__file__).resolve().parents[2]
HEROKU_SPACE = {
    "awsAccountId": "847227832372",
    "awsRegion": "us-east-1",
    "vpcId": "vpc-0heroku0space0001",
    "vpcCidr": "10.0.0.0/16",
    "dynoCidrBlocks": ["172.17.0.0/16"],
    "unavailableCidrBlocks": [],
}


@dataclass(frozen=True)
class Declared:
    """One resource the program registered: its type, name, inputs and the types of its parents."""

    type: str
    name: str
    inputs: dict[str, Any]
    parents: tuple[str, ...]


@dataclass
class Outcome:
    resources: list[Declared] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    invokes: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Declared]:
        return [resource for resource in self.resources if resource.type == type_]

    def one(self, type_: str) -> Declared:
        found = self.of_type(type_)
        assert len(found) == 1, f"{type_}: {len(found)} declared"
        return found[0]


class _Recorder(pulumi.runtime.Mocks):
    """Non-empty ids and the computed outputs the program reads back; the Heroku app holds ``app_config_vars``."""

    def __init__(self, outcome: Outcome, app_config_vars: Mapping[str, str]) -> None:
        self.outcome = outcome
        self.app_config_vars = dict(app_config_vars)

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        outputs = dict(args.inputs)
        name = args.name
        if args.typ == "aws:rds/instance:Instance":
            outputs |= {"address": f"{outputs['identifier']}.c0ffee.us-east-1.rds.amazonaws.com", "port": 5432}
        elif args.typ == "aws:elasticache/replicationGroup:ReplicationGroup":
            outputs |= {"primaryEndpointAddress": f"master.{outputs['replicationGroupId']}.use1.cache.amazonaws.com"}
        elif args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = f"generated{name.replace('-', '')}" + "x" * 8
        elif args.typ == "aws:s3/bucket:Bucket":
            outputs["arn"] = f"arn:aws:s3:::{outputs['bucket']}"
        elif args.typ == "aws:kms/key:Key":
            outputs |= {"arn": f"arn:aws:kms:us-east-1:111122223333:key/{name}", "keyId": f"key-{name}"}
        elif args.typ == "aws:iam/policy:Policy":
            outputs["arn"] = f"arn:aws:iam::111122223333:policy/{name}"
        elif args.typ == "aws:rds/parameterGroup:ParameterGroup":
            outputs["name"] = f"{outputs['namePrefix']}0001"
        else:
            outputs |= _computed_outputs(args.typ, name, outputs)
        return f"{name}-id", outputs

    def call(self, args: MockCallArgs) -> dict[str, Any]:
        self.outcome.invokes.append(args.token)
        name = args.args.get("name", "")
        if args.token == "heroku:app/getApp:getApp":
            return {"id": name, "name": name, "uuid": f"uuid-{name}", "configVars": dict(self.app_config_vars)}
        if args.token == "heroku:addon/getAddon:getAddon":
            return {"id": f"addon-{name}", "name": name}
        if args.token == "heroku:space/getPeeringInfo:getPeeringInfo":
            return dict(HEROKU_SPACE)
        raise AssertionError(f"unexpected invoke {args.token}")


_ACCOUNT = "arn:aws:{service}:us-east-1:111122223333:{resource}"


def _computed_outputs(typ: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The computed outputs of the other resources the program reads back, shaped as AWS returns them (a log
    group's ARN without the ``:*`` the API adds, as the provider hands it over)."""
    if typ == "aws:iam/accessKey:AccessKey":
        return {"secret": f"generated{name.replace('-', '')}secretkey"}
    if typ == "aws:ecr/repository:Repository":
        return {
            "arn": _ACCOUNT.format(service="ecr", resource=f"repository/{inputs['name']}"),
            "repositoryUrl": f"111122223333.dkr.ecr.us-east-1.amazonaws.com/{inputs['name']}",
        }
    if typ == "aws:ecs/cluster:Cluster":
        return {"arn": _ACCOUNT.format(service="ecs", resource=f"cluster/{inputs['name']}")}
    if typ == "aws:ecs/taskDefinition:TaskDefinition":
        return {"arn": _ACCOUNT.format(service="ecs", resource=f"task-definition/{inputs['family']}:1")}
    if typ == "aws:cloudwatch/logGroup:LogGroup":
        return {"arn": _ACCOUNT.format(service="logs", resource=f"log-group:{inputs['name']}")}
    if typ == "aws:iam/role:Role":
        return {"arn": f"arn:aws:iam::111122223333:role/{inputs.get('name', name)}"}
    if typ == "aws:secretsmanager/secret:Secret":
        return {"arn": _ACCOUNT.format(service="secretsmanager", resource=f"secret:{inputs['name']}-AbCdEf")}
    return {}


def stack_config(stack: str, overrides: dict[str, Any] | None = None) -> dict[str, str]:
    """``Pulumi.<stack>.yaml``'s config as the engine hands it to a program (objects as JSON)."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    config: dict[str, Any] = {**document["config"], **(overrides or {})}
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in config.items()}


def run_program(stack: str, config: dict[str, str], *, app_config_vars: Mapping[str, str] | None = None) -> Outcome:
    """Run ``__main__.py`` for ``stack`` with ``config`` under mocks; raise what the program raises.

    :param app_config_vars: the config vars the Heroku app holds (``heroku.app.getApp``); none unless given.
    """
    return contextvars.Context().run(_run, stack, config, app_config_vars or {})


def _run(stack: str, config: dict[str, str], app_config_vars: Mapping[str, str]) -> Outcome:
    outcome = Outcome()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        monitor = MockMonitor(_Recorder(outcome, app_config_vars))
        pulumi.runtime.set_all_config(config)
        pulumi.runtime.set_mocks(monitor.mocks, project="ferry", stack=stack, preview=False, monitor=monitor)
        try:
            runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")
        finally:
            # Let the registrations already queued (the root stack's) finish, whatever the program raised.
            loop.run_until_complete(wait_for_rpcs())
        root = pulumi.runtime.settings.get_root_resource()
        assert root is not None
        for key, value in root.outputs.items():  # type: ignore[attr-defined]
            outcome.outputs[key], secret = loop.run_until_complete(_resolve(value))
            if secret:
                outcome.secret_outputs.add(key)
        for registration in monitor.resources.values():
            qualified = registration.urn.split("::")[2].split("$")
            outcome.resources.append(
                Declared(
                    type=qualified[-1],
                    name=registration.urn.split("::")[3],
                    inputs=registration.state,
                    parents=tuple(qualified[:-1]),
                )
            )
    finally:
        loop.close()
        asyncio.set_event_loop(None)
    return outcome


async def _resolve(value: Any) -> tuple[Any, bool]:
    output = pulumi.Output.from_input(value)
    return await output.future(), await output.is_secret()
