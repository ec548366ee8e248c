"""Throwaway redis-server processes on free ports, with a password, torn down after."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from migration.rehearse.pgcluster import free_port, serving


@dataclass
class RedisServer:
    port: int
    password: str
    dir: Path
    tls: bool = False

    def url(self, password: str | None = None) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://default:{password or self.password}@127.0.0.1:{self.port}"


def _self_signed(root: Path) -> list[str]:
    """A self-signed certificate, like the ones Heroku Redis presents."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=ferry-test",
         "-keyout", str(root / "key.pem"), "-out", str(root / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return ["--tls-cert-file", str(root / "cert.pem"), "--tls-key-file", str(root / "key.pem"),
            "--tls-ca-cert-file", str(root / "cert.pem"), "--tls-auth-clients", "no"]  # fmt: skip


@contextmanager
def running_redis(
    password: str = "redis-pw-42", extra: list[str] | None = None, tls: bool = False
) -> Iterator[RedisServer]:
    server_bin = shutil.which("redis-server")
    if server_bin is None:
        raise RuntimeError("redis-server not found: run `make setup` or install the redis-server package")
    root = Path(tempfile.mkdtemp(prefix="ferry-redis-"))
    port = free_port()
    listen = ["--port", "0", "--tls-port", str(port), *_self_signed(root)] if tls else ["--port", str(port)]
    args = [
        server_bin, *listen, "--bind", "127.0.0.1", "--requirepass", password,
        "--save", "", "--appendonly", "no", "--dir", str(root), "--daemonize", "no",
        "--notify-keyspace-events", "KEA", "--loglevel", "warning", *(extra or []),
    ]  # fmt: skip
    try:
        with serving(args, port, "redis-server", timeout=10):
            yield RedisServer(port, password, root, tls)
    finally:
        shutil.rmtree(root, ignore_errors=True)
