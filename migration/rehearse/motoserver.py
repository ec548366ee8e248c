"""moto's S3 server on a free port: the real S3 HTTP API, served locally."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from migration.rehearse.pgcluster import free_port, serving


@dataclass
class MotoServer:
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def running_moto(enforce_auth: bool = False) -> Iterator[MotoServer]:
    program = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = free_port()
    env = dict(os.environ)
    if enforce_auth:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = "0"
    with serving([program, "-H", "127.0.0.1", "-p", str(port)], port, "moto_server", timeout=30, env=env):
        yield MotoServer(port)
