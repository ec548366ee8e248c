"""Throwaway PostgreSQL clusters for rehearsals and tests: initdb + pg_ctl on a free port, torn down after.

Binaries come from ``pg_config --bindir`` or ``PATH``. PostgreSQL refuses to run as
root, so when we are root the cluster is created and started as an unprivileged user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migration.errors import LocalServerError

#: The rehearsal's name for a local server that did not start.
ClusterError = LocalServerError


def server_bindir() -> Path:
    """Directory holding ``initdb``, ``pg_ctl`` and ``postgres``."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for path in candidates:
        if (path / "initdb").exists() and (path / "pg_ctl").exists():
            return path
    for name in ("initdb", "pg_ctl"):
        if shutil.which(name) is None:
            raise ClusterError(
                f"PostgreSQL server programs not found ({name}); run `make setup` "
                "or install the postgresql Debian package"
            )
    return Path(shutil.which("pg_ctl") or "").parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(args: list[str], port: int, name: str, timeout: float, env: dict[str, str] | None = None) -> Iterator[None]:
    """Run a server child until the block ends; enter once it accepts connections on *port*."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise ClusterError(f"{name} did not start") from None
                time.sleep(0.05)
        yield
    finally:
        stop_process(proc, timeout=10)


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM, and SIGKILL if it has not ended within *timeout* seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise ClusterError("running as root and no unprivileged user (postgres, nobody) exists")


@dataclass
class Cluster:
    """A running PostgreSQL server; ``url(db)`` gives a connection URL."""

    port: int
    datadir: Path
    bindir: Path
    user: str | None
    superuser: str = "ferry"
    password: str = "s3cret-pw"

    def url(self, dbname: str = "postgres", user: str | None = None, password: str | None = None) -> str:
        return f"postgresql://{user or self.superuser}:{password or self.password}@127.0.0.1:{self.port}/{dbname}"

    def _cmd(self, args: list[str]) -> list[str]:
        if self.user is None:
            return args
        return ["runuser", "-u", self.user, "--", *args]

    def stop(self) -> None:
        subprocess.run(
            self._cmd([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"]),
            capture_output=True,
            check=False,
        )


@contextmanager
def running_cluster(settings: dict[str, str] | None = None, bindir: Path | None = None) -> Iterator[Cluster]:
    """Start a fresh cluster with password authentication; remove it afterwards.

    :param bindir: the server programs to use (default: the newest installed).
    """
    bindir = bindir or server_bindir()
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="ferry-pg-"))
    datadir = root / "data"
    pwfile = root / "pw"
    cluster = Cluster(port=free_port(), datadir=datadir, bindir=bindir, user=user)
    pwfile.write_text(cluster.password)
    if user is not None:
        shutil.chown(root, user)
        shutil.chown(pwfile, user)
    try:
        init = subprocess.run(
            cluster._cmd(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(datadir),
                    "-U",
                    cluster.superuser,
                    "--pwfile",
                    str(pwfile),
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if init.returncode != 0:
            raise ClusterError(f"initdb failed: {init.stderr.strip()}")
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(cluster.port),
            "unix_socket_directories": f"'{root}'",
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "max_connections": "60",
            "shared_buffers": "128MB",
            "max_wal_size": "2GB",
            "wal_level": "logical",
            "log_min_messages": "warning",
        }
        conf.update(settings or {})
        with open(datadir / "postgresql.conf", "a") as fh:
            for key, value in conf.items():
                fh.write(f"{key} = {value}\n")
        start = subprocess.run(
            cluster._cmd(
                [str(bindir / "pg_ctl"), "-D", str(datadir), "-l", str(root / "log"), "-w", "-t", "60", "start"]
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if start.returncode != 0:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            raise ClusterError(f"pg_ctl start failed: {start.stderr.strip()} {log[-2000:]}")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
