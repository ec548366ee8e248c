"""The Automation API boundary: outputs masked, Pulumi's errors as one line, a missing CLI named, and no
secret in the stack's config (the Automation API passes one on ``pulumi config set``'s command line)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import ConfigValue, errors
from pulumi.automation._cmd import CommandResult

from migration.errors import InfraError, PreconditionError
from migration.infra import INSTALL_HINT, MASK, Infra, StackOutputs, _pulumi_errors
from migration.redact import register_secret


def test_secret_outputs_are_masked() -> None:
    outputs = StackOutputs(
        values={"databaseEndpoint": "db.example.com", "databaseUrls": {"shop": "postgres://a:pw@db/shop"}},
        secret_keys=frozenset({"databaseUrls"}),
    )
    assert outputs.masked() == {"databaseEndpoint": "db.example.com", "databaseUrls": MASK}


def test_pulumi_errors_become_one_line_without_secrets() -> None:
    register_secret("hunter2-token")
    failed = CommandResult(
        stdout="Updating (qa)\n",
        stderr="warning: something\nerror: update failed: auth hunter2-token rejected\n",
        code=255,
    )
    with pytest.raises(InfraError) as raised, _pulumi_errors("up"):
        raise errors.CommandError(failed)
    assert "\n" not in str(raised.value) and "hunter2-token" not in str(raised.value)
    assert str(raised.value).startswith("pulumi up: error: update failed: auth ")
    with pytest.raises(PreconditionError, match="another update of this stack is running"), _pulumi_errors("up"):
        raise errors.ConcurrentUpdateError(failed)
    with pytest.raises(PreconditionError, match="pulumi stack init"), _pulumi_errors("stack select"):
        raise errors.StackNotFoundError(failed)


def test_a_missing_pulumi_cli_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(InfraError) as raised:
        Infra(tmp_path, "qa", print)
    assert str(raised.value) == INSTALL_HINT


class _Stack:
    """The Automation API stack as ``Infra`` uses it: every config change and update logged in order."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def set_config(self, key: str, value: ConfigValue, *, path: bool = False) -> None:
        self.log.append(("set", key, value.value, value.secret))

    def up(self, **_options: Any) -> None:
        self.log.append(("up",))

    def outputs(self) -> dict[str, Any]:
        return {}


def _infra(stack: _Stack) -> Infra:
    infra = Infra.__new__(Infra)  # no CLI here: the stack is the fake
    infra._stack = stack
    infra._on_output = print
    return infra


def test_a_cutover_step_sets_no_secret_config_before_its_update() -> None:
    stack = _Stack()
    infra = _infra(stack)
    infra.set_cutover("switched", end_bulk_load=True)
    infra.set_cutover("rolled_back")
    assert stack.log == [
        ("set", "ferry:cutover", "switched", False),
        ("set", "ferry:migration.loading", "false", False),
        ("up",),
        ("set", "ferry:cutover", "rolled_back", False),
        ("up",),
    ]
