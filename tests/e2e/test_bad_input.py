"""Bad input from the issue's list: one line naming the problem and its side, the right exit code,
no traceback, no "internal error", nothing written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Database
from tests.helpers import assert_one_line_error, ferry, with_default_sigint
from tests.postgres.test_resume import SLOW_SOURCE


def test_a_bad_maintenance_work_mem_stops_the_copy_before_it_starts(source_db: Database, target_db: Database) -> None:
    source_db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    run = ferry(
        "pg", "copy", "--source", source_db.url, "--target", target_db.url, "--maintenance-work-mem", "lots"
    )  # fmt: skip
    assert_one_line_error(run, "--maintenance-work-mem 'lots' is not a PostgreSQL memory size")
    assert target_db.scalar("SELECT to_regclass('public.t')") is None


def test_a_read_only_target_fails_preflight_and_copy(source_db: Database, target_db: Database) -> None:
    source_db.execute("CREATE TABLE t (id int)")
    target_db.execute(f'ALTER DATABASE "{target_db.name}" SET default_transaction_read_only = on')
    preflight = ferry("pg", "preflight", "--source", source_db.url, "--target", target_db.url, "--json")
    assert preflight.code == 1
    check = next(c for c in preflight.json["checks"] if c["name"] == "target privileges")
    assert check["status"] == "fail" and "read-only" in check["detail"]
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url)
    assert_one_line_error(run, "target:", "read-only")


def test_an_owner_role_that_does_not_exist_is_named_as_such(source_db: Database, target_db: Database) -> None:
    source_db.execute("CREATE TABLE t (id int)")
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--owner", "nosuchrole")
    assert_one_line_error(run, "target:", "--owner nosuchrole: no such role")
    assert "authentication" not in run.stderr


def test_a_password_in_an_extra_argument_is_not_echoed(source_db: Database, target_db: Database) -> None:
    run = ferry(
        "pg", "copy", "--source", source_db.url, "--target", target_db.url,
        "postgres://someone:extra-secret-77@db.example.com/app", "password=kw-secret-88",
    )  # fmt: skip
    assert run.code == 2
    assert "extra-secret-77" not in run.output and "kw-secret-88" not in run.output
    assert "unexpected extra argument" in run.stderr


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["pg", "copy", "--source", "postgres://u:pw-v6@[::1/db", "--target", "postgres://u@h/db"],
            ["source:", "malformed"],
        ),
        (["redis", "copy", "--source", "redis://[::1:6379", "--target", "redis://h:1"], ["source:", "malformed"]),
        (
            ["s3", "sync", "s3://a/", "s3://b/", "--source-endpoint-url", "not-a-url"],
            ["source:", "not an http(s):// URL"],
        ),
        (
            ["s3", "sync", "s3://a/", "s3://b/", "--source-profile", "no-such-profile-x"],
            ["source:", "no such AWS profile"],
        ),
        (["run", "--stack", "../../escape", "--yes"], ["is not a stack name"]),
        (["s3", "sync", "s3://Bad_Bucket!/", "s3://b/"], ["source:", "is not a bucket name"]),
    ],
)
def test_malformed_input_is_one_line_naming_the_side(args: list[str], fragments: list[str], tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    run = ferry(*args, env=env)
    assert_one_line_error(run, *fragments)
    assert "internal error" not in run.output and "pw-v6" not in run.output
    assert not (Path.cwd().parent / "escape").exists()


def test_ctrl_c_exits_130(source_db: Database, target_db: Database) -> None:
    source_db.execute(SLOW_SOURCE)
    proc = subprocess.Popen(
        [sys.executable, "-m", "migration", "pg", "copy", "--source", source_db.url, "--target", target_db.url,
         "--jobs", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=with_default_sigint,
    )  # fmt: skip
    # Interrupted mid-copy, whatever the machine's load: once the data step has begun.
    assert proc.stderr is not None
    seen = [proc.stderr.readline()]
    while seen[-1] and not seen[-1].endswith("== data\n"):
        seen.append(proc.stderr.readline())
    assert seen[-1], seen  # the copy reached its data step
    time.sleep(0.3)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err


def test_clean_also_empties_what_lives_outside_schemas(source_db: Database, target_db: Database) -> None:
    """A second copy with --clean over a first one: publications and event triggers must not collide."""
    source_db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    source_db.execute("CREATE PUBLICATION pub FOR TABLE t")
    source_db.execute(
        "CREATE FUNCTION note() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$; "
        "CREATE EVENT TRIGGER note_ddl ON ddl_command_end EXECUTE FUNCTION note()"
    )
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url).code == 0
    refused = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url)
    assert_one_line_error(refused, "target:", "not empty")
    again = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--clean")
    assert again.code == 0, again.output
    assert target_db.scalar("SELECT count(*) FROM pg_publication") == 1
    assert target_db.scalar("SELECT count(*) FROM pg_event_trigger") == 1


def test_an_empty_target_with_only_a_publication_is_not_empty(source_db: Database, target_db: Database) -> None:
    source_db.execute("CREATE TABLE t (id int)")
    target_db.execute("CREATE PUBLICATION precious_pub")
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url)
    assert_one_line_error(run, "target:", "not empty", "publication precious_pub")


def test_follow_with_table_filters_is_refused_before_anything_is_installed(
    source_db: Database, target_db: Database
) -> None:
    """Capture logs every table: a follow would apply changes to tables the filtered copy left out."""
    source_db.execute("CREATE TABLE kept (id int PRIMARY KEY); CREATE TABLE left_out (id int PRIMARY KEY)")
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "-t", "kept", "--follow")
    assert run.code == 2 and "--follow copies and follows the whole database" in run.stderr
    assert source_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_capture'") == 0
    assert target_db.scalar("SELECT count(*) FROM pg_class WHERE relname = 'kept'") == 0


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["run", "--stack", "x", "--tasks", "0"], "Invalid value for '--tasks'"),
        (["run", "--stack", "x", "--runner", "kubernetes"], "Invalid value for '--runner'"),
        (["pg", "copy"], "Missing option '--target'"),
        (
            ["pg", "copy", "--target", "postgres://u@h/db"],
            "Missing option '--source' (or FERRY_SOURCE_URL, or --from-dump)",
        ),
        (["nope"], "No such command 'nope'"),
        (["pg", "copy", "--source", "postgres://u:hunter2-pw@h/db", "--bogus"], "No such option '--bogus'"),
    ],
)
def test_what_the_argument_parser_refuses_is_one_line_too(args: list[str], fragment: str) -> None:
    refused = ferry(*args)
    assert_one_line_error(refused, fragment, "for help)")
    assert "hunter2-pw" not in refused.output
