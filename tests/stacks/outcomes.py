"""What the program declares for an example stack, shared by the stack tests (cached: the program is deterministic)."""

from __future__ import annotations

import json
from typing import Any

import pulumi

from tests.support.pulumi_program import Outcome, run_program, stack_config

__all__ = ["declared", "secret_value"]

_outcomes: dict[tuple[str, str], Outcome] = {}


def declared(stack: str, **overrides: Any) -> Outcome:
    """The program's declarations for ``stack`` (cached per distinct config: the program is deterministic)."""
    config = stack_config(stack, overrides)
    key = (stack, json.dumps(config, sort_keys=True))
    if key not in _outcomes:
        _outcomes[key] = run_program(stack, config)
    return _outcomes[key]


def secret_value(value: Any) -> Any:
    """The value inside a secret as the engine receives it; fails when it is not marked secret."""
    assert (
        isinstance(value, dict)
        and value.get(pulumi.runtime.rpc._special_sig_key) == pulumi.runtime.rpc._special_secret_sig
    )
    return value["value"]
