"""The runbook's legs (which phases a ``--runner`` task runs), the task's job (no secret in it), and the run's
state shared through the stack's bucket."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from migration.errors import RunnerError
from migration.rehearse.motoserver import running_moto
from migration.runbook.intask import resolved
from migration.runbook.run import PHASES
from migration.runbook.tasks import WITNESS, legs, runner_order
from migration.runner.statestore import StateMirror


def _names(selected: list[str]) -> list[tuple[str | None, list[str]]]:
    chosen = [phase for phase in runner_order(PHASES) if phase.name in selected]
    return [(phase.name if phase else None, leg) for phase, leg in legs(chosen)]


def test_a_whole_run_is_three_tasks_and_the_switch_is_handed_over_inside_the_second() -> None:
    taken = _names([phase.name for phase in PHASES])
    assert taken == [
        (None, ["preflight"]),
        ("provision", []),
        ("alias", []),
        (None, ["copy", "catch-up", "freeze", "final-sync", "verify", WITNESS, "switch", "unfreeze",
                "after-switch", "follow-back"]),
        ("smoke", []),
        ("settle", []),
        ("record", []),
        (None, ["cleanup"]),
    ]  # fmt: skip


def test_a_run_resumed_at_the_switch_proves_the_witnesses_again_in_its_task_first() -> None:
    assert _names(["switch", "unfreeze", "record"]) == [
        (None, [WITNESS, "switch", "unfreeze"]),
        ("record", []),
    ]
    assert _names(["verify"]) == [(None, ["verify"])]  # --until verify: no witness, nothing handed over


def test_env_references_are_resolved_from_the_tasks_environment_and_a_missing_one_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FERRY_TARGET_DATABASE_URL", "postgres://u:p@h/db")
    assert resolved({"a": ["env:FERRY_TARGET_DATABASE_URL", 1], "b": "plain"}) == {
        "a": ["postgres://u:p@h/db", 1],
        "b": "plain",
    }
    monkeypatch.delenv("FERRY_TARGET_DATABASE_URL")
    with pytest.raises(RunnerError, match="no FERRY_TARGET_DATABASE_URL in its environment"):
        resolved("env:FERRY_TARGET_DATABASE_URL")


def test_the_state_mirror_puts_and_takes_the_runs_files_under_the_stack(tmp_path: Path) -> None:
    with running_moto() as moto:
        s3 = boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
        s3.create_bucket(Bucket="shop-ci-ferry-state")
        env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            laptop, task = tmp_path / "laptop" / "state.json", tmp_path / "task" / "state.json"
            mirror = StateMirror("shop-ci-ferry-state", "ci", "us-east-1", moto.endpoint)
            assert mirror.pull(task) is False and not task.exists()  # nothing there yet: a new run
            laptop.parent.mkdir()
            laptop.write_text(json.dumps({"stack": "ci", "awaiting": None}))
            mirror.push(laptop)
            assert mirror.pull(task) is True and json.loads(task.read_text())["stack"] == "ci"
            body = s3.get_object(Bucket="shop-ci-ferry-state", Key="runs/ci/state.json")["Body"].read()
            assert json.loads(body) == {"stack": "ci", "awaiting": None}
            laptop.unlink()
            mirror.push(laptop)  # gone here: gone there
            assert mirror.pull(task) is False and not task.exists()
            with pytest.raises(RunnerError, match="S3 state of stack ci in bucket no-such-bucket"):
                StateMirror("no-such-bucket", "ci", "us-east-1", moto.endpoint).push(tmp_path / "task" / "x")
