"""Running the ferry CLI the way a user does: a child process, its exit code and output."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def with_default_sigint() -> None:
    """``preexec_fn``: Ctrl-C reaches the child even when the suite runs with SIGINT ignored (a background
    job of a shell without job control ignores it, and every child inherits that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def ferry(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Run:
    proc = subprocess.run(
        [sys.executable, "-m", "migration", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(run: Run, *fragments: str, code: int = 2) -> None:
    assert run.code == code, run.output
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("ferry: error: "), run.stderr
    assert run.stderr.strip().splitlines()[-1] == errors[0]
    assert "Traceback" not in run.output
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def s3_client(endpoint: str) -> Any:
    """A boto3 client of a local moto server (any keys do)."""
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="k", aws_secret_access_key="s")  # fmt: skip


def s3_env(source_endpoint: str, target_endpoint: str, *, same_keys: bool = False) -> dict[str, str]:
    """The environment ``ferry s3 …`` reads both sides from; other keys on the target unless *same_keys*."""
    import os

    target_key, target_secret = ("k", "s") if same_keys else ("k2", "s2")
    return {
        **os.environ,
        "FERRY_S3_SOURCE_ENDPOINT_URL": source_endpoint, "FERRY_S3_TARGET_ENDPOINT_URL": target_endpoint,
        "FERRY_S3_SOURCE_ACCESS_KEY_ID": "k", "FERRY_S3_SOURCE_SECRET_ACCESS_KEY": "s",
        "FERRY_S3_TARGET_ACCESS_KEY_ID": target_key, "FERRY_S3_TARGET_SECRET_ACCESS_KEY": target_secret,
        "FERRY_S3_SOURCE_REGION": "us-east-1", "FERRY_S3_TARGET_REGION": "us-east-1",
    }  # fmt: skip


@contextmanager
def following(source_url: str, target_url: str, batch: int = 500) -> Iterator[None]:
    """``follow_changes`` in a thread for the block's length; its failure fails the test."""
    from migration.postgres.capture import FollowOptions, follow_changes
    from migration.progress import PlainProgress

    stop = threading.Event()
    failures: list[BaseException] = []

    def follow() -> None:
        try:
            follow_changes(FollowOptions(source_url, target_url, batch=batch), PlainProgress(unit="rows"), stop.is_set)
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(120)
    assert not failures, failures
