"""What the switch keeps on the app for the rollback (``FERRY_ROLLBACK_CONFIG``), and the local platform's
switch and rollback through it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migration.errors import PlatformError
from migration.platform.local import LocalPlatform, read_env_file, write_env_file
from migration.platform.rollbackvars import ROLLBACK_VAR, kept_for_rollback, restored_vars
from migration.stackconfig import MovedAddon

DATABASE = MovedAddon("postgresql-local-1", "DATABASE", "HEROKU_POSTGRES_DB")


def kept(current: dict[str, str]) -> dict[str, object]:
    data: dict[str, object] = json.loads(current[ROLLBACK_VAR])
    return data


def test_a_keeper_of_this_run_stays_and_grows_and_one_of_another_run_is_replaced() -> None:
    app = {"S3_BUCKET": "old"}
    first = kept_for_rollback(app, ["S3_BUCKET", "AWS_REGION"], "run-1")
    assert kept(first) == {"run": "run-1", "vars": {"AWS_REGION": None, "S3_BUCKET": "old"}}
    switched = {"S3_BUCKET": "new", "AWS_REGION": "us-east-1", "CDN_BUCKET": "cdn-old", **first}
    assert kept_for_rollback(switched, ["S3_BUCKET", "AWS_REGION"], "run-1") == {}  # a second try: it stays
    grown = kept_for_rollback(switched, ["S3_BUCKET", "AWS_REGION", "CDN_BUCKET"], "run-1")
    assert kept(grown)["vars"] == {"AWS_REGION": None, "CDN_BUCKET": "cdn-old", "S3_BUCKET": "old"}
    # Left by a run that ended long ago: its "old" values are older still; this run keeps what the app holds.
    later = kept_for_rollback(switched, ["S3_BUCKET"], "run-2")
    assert kept(later) == {"run": "run-2", "vars": {"S3_BUCKET": "new"}}


@pytest.mark.parametrize("odd", ["not json", '["a list"]', '{"vars": {"S3_BUCKET": 7}}', '{"run": 1, "vars": {}}'])
def test_a_keeper_ferry_did_not_write_stops_the_rollback_in_one_line(odd: str) -> None:
    with pytest.raises(PlatformError, match=f"^{ROLLBACK_VAR} on the app is not what ferry wrote") as raised:
        restored_vars({ROLLBACK_VAR: odd, "S3_BUCKET": "new"})
    assert "\n" not in str(raised.value)
    with pytest.raises(PlatformError):
        kept_for_rollback({ROLLBACK_VAR: odd}, ["S3_BUCKET"], "run-1")


def test_the_local_platform_switches_in_releases_and_rolls_back_from_the_keeper(tmp_path: Path) -> None:
    write_env_file(tmp_path / "config.env", {"DATABASE_URL": "postgres://old", "S3_BUCKET": "old-bucket"})
    platform = LocalPlatform(tmp_path)
    assert platform.alias([DATABASE]) == 1 and platform.release() == 1
    with pytest.raises(PlatformError, match="other is not attached as HEROKU_REDIS_OLD"):
        platform.switch({"DATABASE_URL": "x"}, [MovedAddon("other", "REDIS", "HEROKU_REDIS_OLD")], "run-1")
    urls = {"DATABASE_URL": "postgres://new", "S3_BUCKET": "new-bucket", "AWS_REGION": "us-east-1"}
    assert platform.switch(urls, [DATABASE], "run-1") == 2  # the detach, then every variable: two releases
    assert platform.release() == 3
    config = read_env_file(tmp_path / "config.env")
    assert {name: config[name] for name in urls} == urls
    assert platform.rollback([DATABASE]) == 1
    config = read_env_file(tmp_path / "config.env")
    assert config["DATABASE_URL"] == "postgres://old" and config["S3_BUCKET"] == "old-bucket"
    assert "AWS_REGION" not in config and ROLLBACK_VAR not in config
    assert platform.rollback([DATABASE]) == 0  # nothing left to put back: no release
    write_env_file(tmp_path / "config.env", {**config, ROLLBACK_VAR: "{tampered"})
    with pytest.raises(PlatformError, match="not what ferry wrote"):
        platform.rollback([DATABASE])
    assert read_env_file(tmp_path / "config.env")[ROLLBACK_VAR] == "{tampered"  # nothing changed
