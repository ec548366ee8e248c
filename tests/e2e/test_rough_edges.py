"""Rough edges: what a killed copy leaves in the temporary directory, a run that would run nothing,
a report directory that cannot be written, and a reader that stops reading stdout."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Database
from tests.helpers import assert_one_line_error, ferry
from tests.support.world import World


def _schema_dirs(tmp: Path) -> set[str]:
    return {p.name for p in tmp.iterdir() if p.name.startswith("ferry-schema-")}


def test_a_copy_removes_the_schema_directories_killed_copies_left(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    source_db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    env = {**{k: v for k, v in os.environ.items() if k != "FERRY_CRASH_AT"}, "TMPDIR": str(tmp_path)}
    killed = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url,
                   env={**env, "FERRY_CRASH_AT": "schema-dumped"})  # fmt: skip
    assert killed.code == -9, killed.output
    left = _schema_dirs(tmp_path)
    assert len(left) == 1 and (tmp_path / next(iter(left)) / "schema.dump").exists(), left
    # A running copy's directory (this test process stands in for it) stays.
    running = tmp_path / f"ferry-schema-{os.getpid()}-running"
    running.mkdir()
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, env=env)
    assert copied.code == 0, copied.output
    assert _schema_dirs(tmp_path) == {running.name}


def test_a_run_whose_from_comes_after_its_until_is_a_usage_error(world: World) -> None:
    run = world.ferry("run", "--yes", "--from", "verify", "--until", "copy")
    assert_one_line_error(run, "--from verify comes after --until copy", "nothing to run")
    assert not world.state().get("phases") and world.writes() == []


@pytest.mark.parametrize("where", ["a-file/report", "/proc/ferry-no-such-dir/report"])
def test_an_unwritable_report_directory_stops_the_rehearsal_before_it_starts(where: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    path = str(tmp_path / where) if not where.startswith("/") else where
    started = time.monotonic()
    run = ferry("rehearse", "--report-dir", path)
    assert_one_line_error(run, f"report directory {path} is not writable")
    assert time.monotonic() - started < 10  # no servers started, no data filled
    assert "internal error" not in run.output and "starting" not in run.stderr


def _closed_stdout(*args: str) -> tuple[int, str]:
    """Run ferry with stdout a pipe whose reader is gone, as ``ferry … | head -1`` after head exited."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "migration", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err


def test_a_closed_stdout_ends_any_command_quietly(source_db: Database, target_db: Database) -> None:
    for i in range(200):
        source_db.execute(f"CREATE TABLE t{i} (id int PRIMARY KEY)")
    commands = [
        ["--help"],
        ["pg", "copy", "--help"],
        ["pg", "capture", "install", "--dry-run", "--source", source_db.url],
        ["pg", "verify", "--source", source_db.url, "--target", target_db.url, "--mode", "quick", "--json"],
    ]
    for command in commands:
        code, err = _closed_stdout(*command)
        assert (code, err) == (141, ""), (command, code, err)
    # A failure still says what failed, closed stdout or not.
    code, err = _closed_stdout("pg", "verify", "--source", "postgres://x@127.0.0.1:1/x", "--target", target_db.url)
    assert code == 2 and err.startswith("ferry: error: source: cannot connect"), err
