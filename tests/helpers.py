"""Running the ferry CLI the way a user does: a child process, its exit code and output."""

from __future__ import annotations

import json
import subprocess
import sys
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
