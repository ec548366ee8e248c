"""The Automation API boundary: outputs masked, Pulumi's errors as one line, a missing CLI named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pulumi.automation import errors
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
