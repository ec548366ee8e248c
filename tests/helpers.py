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
