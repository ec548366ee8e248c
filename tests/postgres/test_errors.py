"""Bad input: one line naming the problem and its side, a non-zero exit, nothing lost."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from migration.errors import ExtensionMissingError, SourceChangedError
from migration.postgres import CopyOptions, copy_database
from migration.postgres.copy.tools import find_client_tools
from migration.progress import PlainProgress
from migration.rehearse.pgcluster import free_port
from tests.conftest import Database
from tests.helpers import assert_one_line_error, ferry


def test_malformed_url(target_db: Database) -> None:
    run = ferry("pg", "copy", "--source", "postgres://u:topsecret@host:port/db", "--target", target_db.url)
    assert_one_line_error(run, "source:", "invalid port")
    assert "topsecret" not in run.output


def test_unreachable_host(target_db: Database) -> None:
    run = ferry(
        "pg", "copy", "--source", f"postgres://u:pw-unreach@127.0.0.1:{free_port()}/db", "--target", target_db.url
    )
    assert_one_line_error(run, "source:", "cannot connect")
    assert "pw-unreach" not in run.output


def test_wrong_password(source_db: Database, target_db: Database) -> None:
    bad = target_db.cluster.url(target_db.name, password="wrong-password-123")
    run = ferry("pg", "copy", "--source", source_db.url, "--target", bad)
    assert_one_line_error(run, "target:", "authentication failed")
    assert "wrong-password-123" not in run.output


def test_missing_database_and_create_database(source_db: Database, target_db: Database) -> None:
    source_db.execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    url = target_db.cluster.url(f"{target_db.name}_new")
    run = ferry("pg", "copy", "--source", source_db.url, "--target", url)
    assert_one_line_error(run, "target:", "does not exist")
    run = ferry("pg", "copy", "--source", source_db.url, "--target", url, "--create-database")
    assert run.code == 0, run.stderr


def test_non_empty_target_is_refused_then_cleaned_on_request(source_db: Database, target_db: Database) -> None:
    source_db.execute("CREATE TABLE fresh (id int); INSERT INTO fresh VALUES (1)")
    target_db.execute("CREATE TABLE precious (id int); INSERT INTO precious VALUES (42)")
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url)
    assert_one_line_error(run, "target:", "not empty", "public.precious", "--clean")
    assert target_db.scalar("SELECT id FROM precious") == 42
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--clean")
    assert run.code == 0, run.stderr
    assert target_db.scalar("SELECT to_regclass('public.precious')") is None
    assert target_db.scalar("SELECT count(*) FROM fresh") == 1


def _fake_tools(tmp_path: Path, version: str) -> Path:
    for name in ("pg_dump", "pg_restore"):
        script = tmp_path / name
        script.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) {version}'\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return tmp_path


def test_too_old_pg_dump(source_db: Database, target_db: Database, tmp_path: Path) -> None:
    env = {**os.environ, "FERRY_PG_BINDIR": str(_fake_tools(tmp_path, "9.6.24"))}
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, env=env)
    assert_one_line_error(run, "source:", "pg_dump 9 is older than the source server")
    assert target_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = '_ferry'") == 0


def test_no_password_on_a_child_command_line(source_db: Database, target_db: Database, tmp_path: Path) -> None:
    real = find_client_tools()
    log = tmp_path / "argv.log"
    for name, program in (("pg_dump", real.pg_dump), ("pg_restore", real.pg_restore)):
        script = tmp_path / name
        script.write_text(f'#!/bin/sh\necho "$0 $*" >> {log}\nexec {program} "$@"\n')
        script.chmod(0o755)
    source_db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    env = {**os.environ, "FERRY_PG_BINDIR": str(tmp_path)}
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--json", env=env)
    assert run.code == 0, run.stderr
    logged = log.read_text()
    assert "pg_dump" in logged and "pg_restore" in logged
    password = source_db.cluster.password
    assert password not in logged and password not in run.output


@pytest.fixture
def vanishing_extension(source_db: Database) -> str:
    """An extension installed on the source whose files then disappear: the target lacks it."""
    sharedir = subprocess.run(["pg_config", "--sharedir"], capture_output=True, text=True).stdout.strip()
    extdir = Path(sharedir) / "extension"
    if not os.access(extdir, os.W_OK):
        pytest.skip(f"{extdir} is not writable: cannot make an extension only the source has")
    name = f"ferry_test_ext_{source_db.name}"
    control, script = extdir / f"{name}.control", extdir / f"{name}--1.0.sql"
    control.write_text("default_version = '1.0'\nrelocatable = true\n")
    script.write_text("CREATE FUNCTION ferry_test_answer() RETURNS int LANGUAGE sql AS 'SELECT 42';\n")
    try:
        source_db.execute(f"CREATE EXTENSION {name}")
    finally:
        control.unlink()
        script.unlink()
    return name


def test_missing_extension_on_target(source_db: Database, target_db: Database, vanishing_extension: str) -> None:
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url)
    assert_one_line_error(run, "target:", "lacks extension", vanishing_extension)
    assert target_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = '_ferry'") == 0


class _DropOnData(PlainProgress):
    def __init__(self, db: Database, table: str) -> None:
        super().__init__()
        self.db, self.table = db, table

    def phase(self, name: str) -> None:
        super().phase(name)
        if name == "data":
            self.db.execute(f"DROP TABLE {self.table}")


def test_table_dropped_on_the_source_mid_copy(source_db: Database, target_db: Database) -> None:
    source_db.execute(
        "CREATE TABLE stays (id int PRIMARY KEY); INSERT INTO stays SELECT generate_series(1, 100);"
        "CREATE TABLE goes (id int PRIMARY KEY); INSERT INTO goes SELECT generate_series(1, 100);"
    )
    options = CopyOptions(source_url=source_db.url, target_url=target_db.url, jobs=1)
    with pytest.raises(SourceChangedError) as info:
        copy_database(options, _DropOnData(source_db, "goes"))
    message = str(info.value)
    assert message.startswith("source: ") and "goes" in message and "\n" not in message


def test_missing_extension_error_type(source_db: Database, target_db: Database, vanishing_extension: str) -> None:
    with pytest.raises(ExtensionMissingError):
        copy_database(CopyOptions(source_url=source_db.url, target_url=target_db.url), PlainProgress())


def test_clean_and_resume_together_is_a_usage_error(source_db: Database, target_db: Database) -> None:
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--clean", "--resume")
    assert run.code == 2 and "cannot be used together" in run.stderr


def test_debug_shows_the_traceback(target_db: Database) -> None:
    run = ferry("--debug", "pg", "copy", "--source", "mysql://x/y", "--target", target_db.url)
    assert run.code == 2 and "Traceback" in run.stderr
