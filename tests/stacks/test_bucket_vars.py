"""``storage.buckets[].configVars`` in the stack file: what is refused, in one line naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from migration.errors import ConfigError
from migration.stackconfig import StackConfig, load_stack_file

ROOT = Path(__file__).resolve().parents[2]


def _load(tmp_path: Path, storage: dict[str, Any], **migration: Any) -> StackConfig:
    document = yaml.safe_load((ROOT / "Pulumi.ci.yaml").read_text())
    document["config"]["ferry:storage"] = storage
    document["config"]["ferry:migration"] |= migration
    (tmp_path / "Pulumi.ci.yaml").write_text(yaml.safe_dump(document))
    return load_stack_file(tmp_path, "ci")


def _bucket(config_vars: dict[str, str] | None) -> dict[str, Any]:
    bucket: dict[str, Any] = {"name": "uploads", "source": "old-uploads"}
    if config_vars is not None:
        bucket["configVars"] = config_vars
    return bucket


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"buckets": [_bucket(None)], "appUser": "u"}, "migration.s3 moves bucket uploads but nothing says which"),
        ({"buckets": [_bucket({"bucket": "s3_bucket"})], "appUser": "u"}, "'s3_bucket' is not a config variable"),
        (
            {"buckets": [_bucket({"bucket": "B", "accessKeyId": "K"})], "appUser": "u"},
            "accessKeyId and secretAccessKey",
        ),
        ({"buckets": [_bucket({"bucket": "B", "region": "B"})], "appUser": "u"}, "config variable B is named for two"),
        (
            {"buckets": [_bucket({"bucket": "B", "accessKeyId": "K", "secretAccessKey": "S"})], "appRole": "r"},
            "an access key pair needs appUser",
        ),
        ({"buckets": [_bucket({"bucket": "DATABASE_URL"})], "appUser": "u"}, "names DATABASE_URL, which the cutover"),
        ({"buckets": [_bucket({"bucket": "B", "region": "FERRY_ROLLBACK_CONFIG"})], "appUser": "u"}, "FERRY_ROLLBACK"),
        ({"buckets": [_bucket({"bucket": "HEROKU_POSTGRES_DB_URL"})], "appUser": "u"}, "HEROKU_POSTGRES_DB_URL, which"),
        (
            {"buckets": [_bucket({"bucket": "B"}), {**_bucket({"bucket": "B"}), "name": "other"}], "appUser": "u"},
            "config variable B is named by buckets uploads and other",
        ),
        ({"buckets": [_bucket({"bucket": "B"})], "appUser": "u", "bucketsByConfig": False}, "bucketsByConfig is false"),
    ],
)
def test_bad_bucket_variables_are_refused_in_one_line(tmp_path: Path, storage: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, storage, s3=True)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert str(raised.value).startswith("Pulumi.ci.yaml: ")


def test_an_app_that_finds_its_buckets_otherwise_says_so(tmp_path: Path) -> None:
    otherwise = _load(tmp_path, {"buckets": [_bucket(None)], "appUser": "u", "bucketsByConfig": False}, s3=True)
    assert otherwise.migration.s3 and otherwise.storage is not None and not otherwise.storage.buckets_by_config
    # S3 not moved: nothing to point at, so nothing to name.
    unmoved = _load(tmp_path, {"buckets": [_bucket(None)], "appUser": "u"}, s3=False)
    assert not unmoved.migration.s3 and unmoved.storage is not None and unmoved.storage.buckets[0].config_vars is None
