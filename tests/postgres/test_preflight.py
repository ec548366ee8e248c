"""ferry pg preflight: every check, and the exit code that says whether the copy would work."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.conftest import Database
from tests.helpers import ferry


def _checks(run_json: dict[str, object]) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["status"], c["detail"]) for c in run_json["checks"]}  # type: ignore[attr-defined]


def test_a_copy_that_would_work(source_db: Database, target_db: Database) -> None:
    source_db.execute(
        "CREATE EXTENSION pg_trgm; CREATE TABLE keyed (id int PRIMARY KEY, t text);"
        "CREATE TABLE loose (t text); INSERT INTO keyed SELECT g, md5(g::text) FROM generate_series(1, 20000) g;"
    )
    run = ferry("pg", "preflight", "--source", source_db.url, "--target", target_db.url, "--json")
    assert run.code == 0, run.output
    report = run.json
    checks = _checks(report)
    assert checks["extensions"] == ("ok", "pg_trgm")
    assert checks["target empty"][0] == "ok"
    assert (
        checks["tables without a primary key"][0] == "warn"
        and "public.loose" in checks["tables without a primary key"][1]
    )
    assert checks["pg_dump"][0] == "ok" and checks["source server"][0] == "ok"
    assert report["tables"] == 2 and report["source_bytes"] > 1_000_000 and report["estimated_seconds"] > 0
    assert "about" in checks["estimate"][1]
    human = ferry("pg", "preflight", "--source", source_db.url, "--target", target_db.url)
    assert human.code == 0 and "the copy should work" in human.stdout


def test_a_copy_that_would_fail(source_db: Database, target_db: Database, tmp_path: Path) -> None:
    target_db.execute("CREATE TABLE already_here (id int)")
    for name in ("pg_dump", "pg_restore"):
        script = tmp_path / name
        script.write_text(f"#!/bin/sh\necho '{name} (PostgreSQL) 11.2'\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "FERRY_PG_BINDIR": str(tmp_path)}
    run = ferry(
        "pg",
        "preflight",
        "--source",
        source_db.url,
        "--target",
        target_db.url,
        "--owner",
        "nobody_here",
        "--json",
        env=env,
    )
    assert run.code == 1, run.output
    checks = _checks(run.json)
    assert checks["target empty"][0] == "fail" and "already_here" in checks["target empty"][1]
    assert checks["pg_dump"][0] == "fail" and "older than the source" in checks["pg_dump"][1]
    assert checks["owner role"] == ("fail", "role nobody_here does not exist on the target")
    human = ferry("pg", "preflight", "--source", source_db.url, "--target", target_db.url, env=env)
    assert human.code == 1 and "FAIL" in human.stdout


def test_unreachable_sides_are_failed_checks(source_db: Database) -> None:
    run = ferry("pg", "preflight", "--source", source_db.url, "--target", "postgres://u:pw-x@127.0.0.1:1/x", "--json")
    assert run.code == 1
    checks = _checks(run.json)
    assert checks["target server"][0] == "fail" and checks["source server"][0] == "ok"
    assert "pw-x" not in run.output


def test_tables_capture_cannot_follow_and_capture_left_over_are_reported(
    source_db: Database, target_db: Database
) -> None:
    source_db.execute(
        "CREATE TABLE keyed (id int PRIMARY KEY); CREATE TABLE by_unique (code text NOT NULL UNIQUE);"
        "CREATE TABLE nullable_unique (code text UNIQUE); CREATE TABLE loose (t text);"
        "INSERT INTO loose SELECT repeat(md5(g::text), 20) FROM generate_series(1, 20000) g;"
    )
    run = ferry("pg", "preflight", "--source", source_db.url, "--target", target_db.url, "--json")
    checks = _checks(run.json)
    status, detail = checks["tables capture cannot follow"]
    # A non-null unique key is a key; a nullable one is not.
    assert status == "warn" and detail.startswith("2 without a primary or non-null unique key")
    assert "public.loose (" in detail and "MB)" in detail and "public.nullable_unique" in detail
    assert "by_unique" not in detail and "inside the freeze, about" in detail
    assert run.json["estimated_freeze_seconds"] > 0
    assert checks["change capture"] == ("ok", "not installed")
    try:
        assert ferry("pg", "capture", "install", "--source", source_db.url).code == 0
        source_db.execute("INSERT INTO keyed VALUES (1), (2); INSERT INTO ferry_capture.fence DEFAULT VALUES")
        again = _checks(ferry("pg", "preflight", "--source", source_db.url, "--target", target_db.url, "--json").json)
        status, detail = again["change capture"]
        assert status == "warn" and "installed by an earlier run (2 log entries" in detail
        assert "FENCE IS UP" in detail and "ferry pg capture remove" in detail
    finally:
        assert ferry("pg", "capture", "remove", "--source", source_db.url).code == 0
