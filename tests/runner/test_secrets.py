"""``ferry secrets set`` against moto's Secrets Manager over HTTP, run as a user runs it."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from migration.rehearse.motoserver import MotoServer, running_moto
from tests.helpers import Run, assert_one_line_error
from tests.support.fake_fargate import aws

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"  # Pulumi.ci.yaml's
#: What a person gives: recognisable, so that any echo of them is found.
VALUES = {
    "HEROKU_API_KEY": "heroku-key-Sekr3t-0c1d2e3f",
    "FERRY_S3_SOURCE_ACCESS_KEY_ID": "AKIAOLDBUCKETS0SEKRET",
    "FERRY_S3_SOURCE_SECRET_ACCESS_KEY": "old-buckets-Sekr3t-secret-key/+9",
}
NAMES = {
    "HEROKU_API_KEY": "heroku-api-key",
    "FERRY_S3_SOURCE_ACCESS_KEY_ID": "s3-source-access-key-id",
    "FERRY_S3_SOURCE_SECRET_ACCESS_KEY": "s3-source-secret-access-key",
}
UNSET = "(not yet set)"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with running_moto() as server:
        yield server


def _stack_file(root: Path, stack: str, **changes: Any) -> None:
    """Pulumi.ci.yaml (app shop, ferry:runner, migration.s3 on) as stack *stack*, with *changes* to its config."""
    document = yaml.safe_load((ROOT / "Pulumi.ci.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            document["config"].pop(key, None)
        else:
            document["config"][key] = value
    root.mkdir(parents=True, exist_ok=True)
    (root / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))


def _create(moto: MotoServer, stack: str, *envs: str) -> None:
    """The secrets ``pulumi up`` would create for *stack* (holding a placeholder until a person sets them)."""
    client = aws("secretsmanager", moto.endpoint, REGION)
    for env in envs:
        client.create_secret(Name=f"ferry/shop-{stack}/{NAMES[env]}", SecretString=UNSET)


def _value(moto: MotoServer, stack: str, env: str) -> str:
    client = aws("secretsmanager", moto.endpoint, REGION)
    return str(client.get_secret_value(SecretId=f"ferry/shop-{stack}/{NAMES[env]}")["SecretString"])


def _env(moto: MotoServer, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in VALUES}
    return {**env, "FERRY_AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test", **values}  # fmt: skip


def _ferry(root: Path, *args: str, env: dict[str, str]) -> Run:
    # stdin is no terminal, whatever the suite was started from.
    proc = subprocess.run([sys.executable, "-m", "migration", "secrets", "set", "--root", str(root), *args],
                          capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120)  # fmt: skip
    return Run(proc.returncode, proc.stdout, proc.stderr)


def _no_value_in(run: Run) -> None:
    for value in VALUES.values():
        assert value not in run.output
    assert "Sekr3t" not in run.output


def test_values_from_the_environment_are_set_and_never_shown(moto: MotoServer, tmp_path: Path) -> None:
    _stack_file(tmp_path, "one")
    _create(moto, "one", *VALUES)
    run = _ferry(tmp_path, "--stack", "one", "--from-env", env=_env(moto, **VALUES))
    assert run.code == 0, run.output
    assert run.stdout.splitlines() == [f"ferry/shop-one/{NAMES[env]} ({env}): set" for env in VALUES]
    _no_value_in(run)
    for env, value in VALUES.items():
        assert _value(moto, "one", env) == value

    again = _ferry(tmp_path, "--stack", "one", "--from-env", "--json",
                   env=_env(moto, **{**VALUES, "HEROKU_API_KEY": "heroku-key-Sekr3t-rotated"}))  # fmt: skip
    assert again.code == 0, again.output
    assert again.json == {"secrets": [{"name": f"ferry/shop-one/{NAMES[env]}", "env": env, "status": "set"}
                                      for env in VALUES]}  # fmt: skip
    _no_value_in(again)
    assert "rotated" not in again.output
    assert _value(moto, "one", "HEROKU_API_KEY") == "heroku-key-Sekr3t-rotated"


def test_only_the_secrets_of_moved_stores_are_asked_for(moto: MotoServer, tmp_path: Path) -> None:
    migration = yaml.safe_load((ROOT / "Pulumi.ci.yaml").read_text())["config"]["ferry:migration"]
    _stack_file(tmp_path, "two", **{"ferry:migration": {**migration, "s3": False}})
    _create(moto, "two", "HEROKU_API_KEY")
    run = _ferry(tmp_path, "--stack", "two", "--from-env", env=_env(moto, HEROKU_API_KEY=VALUES["HEROKU_API_KEY"]))
    assert run.code == 0, run.output
    assert run.stdout.splitlines() == ["ferry/shop-two/heroku-api-key (HEROKU_API_KEY): set"]
    assert _value(moto, "two", "HEROKU_API_KEY") == VALUES["HEROKU_API_KEY"]


def test_a_missing_variable_is_one_line_naming_it_and_nothing_is_set(moto: MotoServer, tmp_path: Path) -> None:
    _stack_file(tmp_path, "three")
    _create(moto, "three", *VALUES)
    given = {k: v for k, v in VALUES.items() if k != "FERRY_S3_SOURCE_SECRET_ACCESS_KEY"}
    run = _ferry(tmp_path, "--stack", "three", "--from-env", env=_env(moto, **given))
    assert_one_line_error(run, "FERRY_S3_SOURCE_SECRET_ACCESS_KEY")
    _no_value_in(run)
    assert all(_value(moto, "three", env) == UNSET for env in VALUES)


def test_a_secret_pulumi_has_not_created_is_one_line_and_nothing_is_set(moto: MotoServer, tmp_path: Path) -> None:
    _stack_file(tmp_path, "four")
    _create(moto, "four", "HEROKU_API_KEY")  # the bucket keys' secrets are missing
    run = _ferry(tmp_path, "--stack", "four", "--from-env", env=_env(moto, **VALUES))
    assert_one_line_error(run, "ferry/shop-four/s3-source-access-key-id", "`pulumi up -s four`")
    _no_value_in(run)
    assert _value(moto, "four", "HEROKU_API_KEY") == UNSET


@pytest.mark.parametrize(
    ("stack", "fragment"),
    [("../etc", "not a stack name"), ("nosuch", "Pulumi.nosuch.yaml: no such stack file")],
)
def test_a_bad_stack_is_one_line(moto: MotoServer, tmp_path: Path, stack: str, fragment: str) -> None:
    run = _ferry(tmp_path, "--stack", stack, "--from-env", env=_env(moto, **VALUES))
    assert_one_line_error(run, fragment)


def test_a_stack_without_a_runner_is_one_line(moto: MotoServer, tmp_path: Path) -> None:
    _stack_file(tmp_path, "five", **{"ferry:runner": None})
    run = _ferry(tmp_path, "--stack", "five", "--from-env", env=_env(moto, **VALUES))
    assert_one_line_error(run, "ferry:runner", "pulumi up -s five")


def test_without_a_terminal_or_from_env_it_asks_nothing_and_refuses(moto: MotoServer, tmp_path: Path) -> None:
    _stack_file(tmp_path, "six")
    _create(moto, "six", *VALUES)
    run = _ferry(tmp_path, "--stack", "six", env=_env(moto, **VALUES))
    assert_one_line_error(run, "--from-env")
    assert _value(moto, "six", "HEROKU_API_KEY") == UNSET


class _Terminal:
    """The parent's side of a pseudo-terminal: everything the child wrote on it so far."""

    def __init__(self, fd: int) -> None:
        self.fd, self.screen = fd, ""

    def wait_for(self, text: str, count: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.screen.count(text) < count:
            assert time.monotonic() < deadline, f"never saw {text!r} in {self.screen!r}"
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                assert chunk, f"the terminal closed before {text!r}: {self.screen!r}"
                self.screen += chunk.decode(errors="replace")


def test_on_a_terminal_it_asks_with_hidden_input(moto: MotoServer, tmp_path: Path) -> None:
    _stack_file(tmp_path, "seven")
    _create(moto, "seven", *VALUES)
    argv = [sys.executable, "-m", "migration", "secrets", "set", "--root", str(tmp_path), "--stack", "seven"]
    env = _env(moto)
    pid, fd = pty.fork()
    if pid == 0:  # the child, with the terminal as its own
        os.execve(sys.executable, argv, env)
    terminal = _Terminal(fd)
    try:
        for n, (env_name, value) in enumerate(VALUES.items(), 1):
            terminal.wait_for("): ", n)  # the prompt: "NAME (what it is): "
            assert f"{env_name} (" in terminal.screen
            os.write(fd, value.encode() + b"\n")
        terminal.wait_for("(FERRY_S3_SOURCE_SECRET_ACCESS_KEY): set")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, terminal.screen
    assert "Sekr3t" not in terminal.screen and not any(v in terminal.screen for v in VALUES.values())  # no echo
    for env_name, value in VALUES.items():
        assert _value(moto, "seven", env_name) == value


@pytest.mark.parametrize(("value", "fragment"), [("   ", "no value for HEROKU_API_KEY"),
                                                 ("key-1\nkey-2", "spaces or line breaks"),
                                                 (" key-1", "spaces or line breaks")])  # fmt: skip
def test_a_blank_or_broken_value_is_one_line_and_nothing_is_set(
    moto: MotoServer, tmp_path: Path, value: str, fragment: str
) -> None:
    stack = f"bad{abs(hash(value)) % 1000}"
    _stack_file(tmp_path, stack)
    _create(moto, stack, *VALUES)
    run = _ferry(tmp_path, "--stack", stack, "--from-env", env=_env(moto, **{**VALUES, "HEROKU_API_KEY": value}))
    assert_one_line_error(run, fragment)
    assert all(_value(moto, stack, env) == UNSET for env in VALUES)
