"""``ferry run`` moving the buckets behind the fence, through the Heroku fake and moto's S3: uploads go on
during the freeze, arrive after the switch, and the app's bucket variables move and come back on rollback."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import boto3
import pytest
import yaml

from migration.platform.rollbackvars import ROLLBACK_VAR
from migration.rehearse.motoserver import MotoServer, running_moto
from tests.helpers import ferry
from tests.support.world import World

OLD_BUCKET, NEW_BUCKET = "shop-ci-uploads-heroku", "shop-test-uploads"  # the stack's naming: {app}-{stack}-{name}


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    with running_moto() as server:
        yield server


def _s3(server: MotoServer) -> object:
    return boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1",
                        aws_access_key_id="k", aws_secret_access_key="s")  # fmt: skip


def _with_buckets(world: World, moto: MotoServer) -> dict[str, str]:
    document = yaml.safe_load((world.root / "Pulumi.test.yaml").read_text())
    document["config"]["ferry:migration"].update(s3=True, capture=True, freeze="fence", smokeUrls=[])
    (world.root / "Pulumi.test.yaml").write_text(yaml.safe_dump(document))
    client = _s3(moto)
    for bucket in (OLD_BUCKET, NEW_BUCKET):
        client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    for n in range(20):
        client.put_object(Bucket=OLD_BUCKET, Key=f"uploads/{n}.png", Body=b"png" * n)  # type: ignore[attr-defined]
    world.fake.apps["shop"].config |= {"S3_BUCKET": OLD_BUCKET, "AWS_ACCESS_KEY_ID": "HEROKU-ERA-KEY",
                                       "AWS_SECRET_ACCESS_KEY": "heroku-era-secret-value"}  # fmt: skip
    env = {"FERRY_APP_S3_ACCESS_KEY_ID": "AKIA-NEW-APP", "FERRY_APP_S3_SECRET_ACCESS_KEY": "new-app-secret-value"}
    for side in ("SOURCE", "TARGET"):
        env |= {f"FERRY_S3_{side}_ENDPOINT_URL": moto.endpoint, f"FERRY_S3_{side}_REGION": "us-east-1",
                f"FERRY_S3_{side}_ACCESS_KEY_ID": "k", f"FERRY_S3_{side}_SECRET_ACCESS_KEY": "s"}  # fmt: skip
    world.env.update(env)
    return env


def test_a_fenced_run_moves_the_buckets_and_the_apps_variables_and_a_rollback_puts_them_back(
    world: World, moto: MotoServer
) -> None:
    _with_buckets(world, moto)
    client = _s3(moto)
    frozen = world.ferry("run", "--yes", "--until", "verify")
    assert frozen.code == 0, frozen.output
    # Uploads go on through the freeze, to the old bucket: the fence stops no S3 write.
    client.put_object(Bucket=OLD_BUCKET, Key="uploads/during-the-freeze.png", Body=b"late")  # type: ignore[attr-defined]
    finished = world.ferry("run", "--yes", "--json")
    assert finished.code == 0, finished.output
    config = world.fake.apps["shop"].config
    assert config["S3_BUCKET"] == NEW_BUCKET and config["AWS_REGION"] == "us-east-1"
    assert config["AWS_ACCESS_KEY_ID"] == "AKIA-NEW-APP" and config["AWS_SECRET_ACCESS_KEY"] == "new-app-secret-value"
    kept = json.loads(config[ROLLBACK_VAR])["vars"]
    assert kept == {"S3_BUCKET": OLD_BUCKET, "AWS_REGION": None, "AWS_ACCESS_KEY_ID": "HEROKU-ERA-KEY",
                    "AWS_SECRET_ACCESS_KEY": "heroku-era-secret-value"}  # fmt: skip
    # One release for every variable, right after the detaches (DATABASE, REDIS): three inside the freeze.
    assert world.state()["releases_in_freeze"] == 3
    body = client.get_object(Bucket=NEW_BUCKET, Key="uploads/during-the-freeze.png")["Body"].read()  # type: ignore[attr-defined]
    assert body == b"late"
    after = world.state()["stores"]["s3"]["after_switch"]
    assert after["arrived_after_switch"] == 1 and after["conflicts"] == []
    assert world.state()["verify"][f"s3:{OLD_BUCKET}"]["identical"] is True
    for secret in ("new-app-secret-value", "heroku-era-secret-value"):
        assert secret not in finished.output
        assert secret not in (world.root / ".ferry" / "test" / "state.json").read_text()

    back = world.ferry("rollback", "--discard-writes-since-switch")
    assert back.code == 0, back.output
    config = world.fake.apps["shop"].config
    assert config["S3_BUCKET"] == OLD_BUCKET and config["AWS_ACCESS_KEY_ID"] == "HEROKU-ERA-KEY"
    assert "AWS_REGION" not in config and ROLLBACK_VAR not in config
    assert config["DATABASE_URL"] == world.source_db.url


@pytest.mark.parametrize("phase", ["copy", "final-sync", "switch", "after-switch"])
def test_a_run_moving_buckets_killed_after_a_phase_resumes_with_nothing_lost(
    world: World, moto: MotoServer, phase: str
) -> None:
    """kill -9 of ``ferry run`` as the phase finished its work but before it was recorded; uploads go on."""
    _with_buckets(world, moto)
    client = _s3(moto)
    killed = ferry("run", "--stack", "test", "--root", str(world.root), "--yes",
                   env={**world.env, "FERRY_CRASH_AT": f"phase-{phase}"})  # fmt: skip
    assert killed.code == -signal.SIGKILL, killed.output
    uploaded_bucket = world.fake.apps["shop"].config["S3_BUCKET"]  # where the app uploads now
    client.put_object(Bucket=uploaded_bucket, Key="uploads/after-the-kill.png", Body=b"k")  # type: ignore[attr-defined]
    resumed = world.ferry("run", "--yes")
    assert resumed.code == 0, resumed.output
    assert world.fake.apps["shop"].config["S3_BUCKET"] == NEW_BUCKET
    assert client.get_object(Bucket=NEW_BUCKET, Key="uploads/after-the-kill.png")["Body"].read() == b"k"  # type: ignore[attr-defined]
    assert world.state()["verify"][f"s3:{OLD_BUCKET}"]["identical"] is True
    assert world.state()["releases_in_freeze"] == 3  # the switch's releases made once, whatever was killed


def _contents(client: object, bucket: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])  # type: ignore[attr-defined]
    return {
        item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()  # type: ignore[attr-defined]
        for item in listed
    }


def test_a_rollback_after_the_switch_brings_the_new_buckets_back_and_undoes_strays_on_the_old(
    world: World, moto: MotoServer
) -> None:
    _with_buckets(world, moto)
    client = _s3(moto)
    done = world.ferry("run", "--yes")
    assert done.code == 0, done.output
    # The app on the new bucket: an upload, an overwrite, a delete.
    client.put_object(Bucket=NEW_BUCKET, Key="uploads/new.png", Body=b"new")  # type: ignore[attr-defined]
    client.put_object(Bucket=NEW_BUCKET, Key="uploads/1.png", Body=b"overwritten")  # type: ignore[attr-defined]
    client.delete_object(Bucket=NEW_BUCKET, Key="uploads/2.png")  # type: ignore[attr-defined]
    # A client still on the old bucket: a delete and an overwrite of what the app has, and an upload of its own.
    client.delete_object(Bucket=OLD_BUCKET, Key="uploads/4.png")  # type: ignore[attr-defined]
    client.put_object(Bucket=OLD_BUCKET, Key="uploads/6.png", Body=b"stray")  # type: ignore[attr-defined]
    client.put_object(Bucket=OLD_BUCKET, Key="uploads/stray.png", Body=b"stray")  # type: ignore[attr-defined]
    back = world.ferry("rollback")
    assert back.code == 0, back.output
    assert "2 a stray had deleted or replaced" in back.output
    old, new = _contents(client, OLD_BUCKET), _contents(client, NEW_BUCKET)
    assert old.pop("uploads/stray.png") == b"stray"  # only a stray's: it stays where it was written
    assert old == new and old["uploads/1.png"] == b"overwritten" and "uploads/2.png" not in old
    assert world.fake.apps["shop"].config["S3_BUCKET"] == OLD_BUCKET
