"""The S3 follow and the sync after the switch, on moto's servers: each rule that keeps the app's own writes
to the new bucket, and the follower killed with -9 and started again."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from migration.errors import FerryError
from migration.progress import PlainProgress
from migration.rehearse.motoserver import MotoServer
from migration.runbook.follower import Follower
from migration.runbook.state import FollowerState
from migration.s3 import (
    AfterSwitchResult,
    AfterSwitchVerify,
    Ledger,
    S3Side,
    SyncOptions,
    follow_buckets,
    hold_path,
    ledger_path,
    parse_location,
    sync_after_switch,
    sync_buckets,
    verify_after_switch,
)
from migration.s3.transfer import TransferSettings, copy_object
from migration.worker import S3FollowJob
from tests.s3.conftest import env, s3


@dataclass(frozen=True)
class Pair:
    """An old and a new bucket on two servers, ferry's two sides, and a client of each."""

    old: str
    new: str
    source: S3Side
    target: S3Side
    old_s3: Any
    new_s3: Any

    def after_switch(self, ledger: Ledger) -> AfterSwitchResult:
        return sync_after_switch(f"s3://{self.old}", f"s3://{self.new}", self.source, self.target, ledger)

    def verify(self, ledger: Ledger) -> AfterSwitchVerify:
        return verify_after_switch(f"s3://{self.old}", f"s3://{self.new}", self.source, self.target, ledger)


@pytest.fixture
def pair(moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]) -> Pair:
    return Pair(*buckets, *sides(moto_pair), s3(moto_pair[0]), s3(moto_pair[1]))


def sides(pair: tuple[MotoServer, MotoServer]) -> tuple[S3Side, S3Side]:
    source, target = pair
    return (
        S3Side("source", region="us-east-1", endpoint_url=source.endpoint, access_key_id="a", secret_access_key="b"),
        S3Side("target", region="us-east-1", endpoint_url=target.endpoint, access_key_id="c", secret_access_key="d"),
    )


def body(client: Any, bucket: str, key: str) -> bytes | None:
    try:
        return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    except client.exceptions.NoSuchKey:
        return None


def test_after_the_switch_the_apps_writes_win_and_only_ferrys_unchanged_copies_move(pair: Pair, tmp_path: Path) -> None:
    old, new, old_s3, new_s3 = pair.old, pair.new, pair.old_s3, pair.new_s3
    source, target = pair.source, pair.target
    for key in ("changed", "both", "deleted-old", "deleted-new", "kept"):
        old_s3.put_object(Bucket=old, Key=key, Body=f"v1 {key}".encode())
    ledger = Ledger(tmp_path / "ledger")
    sync_buckets(SyncOptions(f"s3://{old}", f"s3://{new}", source=source, target=target), PlainProgress(), ledger)
    # The switch: the app writes to the new bucket; a stale dyno still wrote to the old one.
    new_s3.put_object(Bucket=new, Key="both", Body=b"the app's, after the switch")
    new_s3.put_object(Bucket=new, Key="uploaded-new", Body=b"a new upload")
    new_s3.delete_object(Bucket=new, Key="deleted-new")
    old_s3.put_object(Bucket=old, Key="changed", Body=b"v2 changed")
    old_s3.put_object(Bucket=old, Key="both", Body=b"v2 both, from a stale dyno")
    old_s3.delete_object(Bucket=old, Key="deleted-old")
    old_s3.put_object(Bucket=old, Key="arrived", Body=b"uploaded after the last pass")

    result = pair.after_switch(ledger)

    assert body(new_s3, new, "changed") == b"v2 changed"  # ferry's unchanged copy: replaced
    assert body(new_s3, new, "both") == b"the app's, after the switch"  # the app's write: never overwritten
    assert result.conflicts == ["both"]
    assert body(new_s3, new, "deleted-old") is None  # ferry's unchanged copy of an object deleted since: gone
    assert body(new_s3, new, "deleted-new") is None  # the app deleted it: it stays deleted
    assert body(new_s3, new, "uploaded-new") == b"a new upload"  # the app's upload: kept
    assert body(new_s3, new, "arrived") == b"uploaded after the last pass"
    assert body(new_s3, new, "kept") == b"v1 kept"
    assert (result.arrived, result.deleted, result.kept_deleted) == (2, 1, 1)
    assert result.lag_seconds > 0

    report = pair.verify(ledger)
    assert report.identical, report.differences
    assert report.app_written == 2  # "both" and "uploaded-new"

    # The check is no echo of the sync: an object the rules still owe is a difference.
    old_s3.put_object(Bucket=old, Key="late", Body=b"after the sync")
    late = pair.verify(ledger)
    assert [d.name for d in late.differences] == ["late"]
    ledger.close()


def test_a_conditional_copy_never_lands_over_a_write_it_did_not_expect(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]
) -> None:
    old, new = buckets
    old_s3, new_s3 = s3(moto_pair[0]), s3(moto_pair[1])
    old_s3.put_object(Bucket=old, Key="k", Body=b"ferry's")
    new_s3.put_object(Bucket=new, Key="k", Body=b"the app's")
    src, dst = parse_location(f"s3://{old}", "source"), parse_location(f"s3://{new}", "target")
    etag = old_s3.head_object(Bucket=old, Key="k")["ETag"].strip('"')
    for settings in (
        TransferSettings(server_side=False, if_absent=True),  # the app uploaded it in between
        TransferSettings(server_side=False, if_etag="0" * 32),  # the app replaced ferry's copy in between
    ):
        with pytest.raises(FerryError):
            copy_object(old_s3, new_s3, src, dst, "k", 7, etag, settings)
        assert body(new_s3, new, "k") == b"the app's"
    app_etag = new_s3.head_object(Bucket=new, Key="k")["ETag"].strip('"')
    copy_object(old_s3, new_s3, src, dst, "k", 7, etag, TransferSettings(server_side=False, if_etag=app_etag))
    assert body(new_s3, new, "k") == b"ferry's"


def test_a_follower_killed_mid_pass_resumes_and_writes_down_what_it_copied(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = buckets
    old_s3, new_s3 = s3(moto_pair[0]), s3(moto_pair[1])
    for n in range(30):
        old_s3.put_object(Bucket=old, Key=f"file-{n:02}", Body=f"content {n}".encode())
    for name, value in env(moto_pair).items():
        monkeypatch.setenv(name, value)
    state = FollowerState()
    follower = Follower("s3", tmp_path, state, lambda: None)
    job = S3FollowJob([[old, new]], follower.status_file, str(tmp_path), interval=0.2, jobs=2)

    monkeypatch.setenv("FERRY_CRASH_AT", "s3-object:10")  # kill -9 in the middle of the first pass
    with pytest.raises(FerryError, match="s3 live copy stopped"):
        follower.start(job, ready_phase="live", timeout=60)
    copied_before = len(new_s3.list_objects_v2(Bucket=new).get("Contents", []))
    assert 0 < copied_before < 30

    monkeypatch.delenv("FERRY_CRASH_AT")
    follower.start(job, ready_phase="live", timeout=60)
    old_s3.put_object(Bucket=old, Key="file-live", Body=b"uploaded while followed")
    deadline = time.monotonic() + 30
    while body(new_s3, new, "file-live") is None:
        assert time.monotonic() < deadline, "the follower did not copy a new upload"
        time.sleep(0.1)
    status = json.loads(follower.status_file.read_text())
    assert status["phase"] == "live" and status["applied"] >= 30 - copied_before  # the rest of the first pass
    assert follower.drain(60)

    source, target = sides(moto_pair)
    with Ledger(ledger_path(tmp_path, old, new)) as ledger:
        # Every object the new bucket holds is known as ferry's: the ones the killed pass copied too.
        assert all(ledger.copied(f"file-{n:02}") is not None for n in range(30))
        assert verify_after_switch(f"s3://{old}", f"s3://{new}", source, target, ledger).identical


def test_a_hold_ends_the_pass_under_way_and_begins_no_other(pair: Pair, tmp_path: Path) -> None:
    old, new, old_s3, new_s3 = pair.old, pair.new, pair.old_s3, pair.new_s3
    source, target = pair.source, pair.target
    for n in range(40):
        old_s3.put_object(Bucket=old, Key=f"k{n:02}", Body=b"x")
    status = tmp_path / "s3-live.json"
    asked = iter(range(10**6))
    held_at: list[int] = []

    def stop() -> bool:
        # The hold comes in the middle of the first pass (the 10th question); the stop once it is held.
        if next(asked) == 10:
            hold_path(status).touch()
        if status.exists() and json.loads(status.read_text())["phase"] == "held":
            held_at.append(len(new_s3.list_objects_v2(Bucket=new).get("Contents", [])))
            old_s3.put_object(Bucket=old, Key="during-the-hold", Body=b"y")
            return len(held_at) > 5
        return False

    followed = follow_buckets(
        [(old, new)], source, target, tmp_path, status, PlainProgress(), stop, interval=0.01, jobs=1
    )
    assert followed.passes == 0  # the pass the hold cut short is no pass
    copied = len(new_s3.list_objects_v2(Bucket=new).get("Contents", []))
    assert 0 < copied < 40 and set(held_at) == {copied}  # nothing copied while held, nor after the stop
    assert body(new_s3, new, "during-the-hold") is None
    assert json.loads(status.read_text())["phase"] == "stopped"


def _ledgered(tmp_path: Path, name: str) -> Ledger:
    return Ledger(tmp_path / f"{name}.ledger")


def test_an_object_the_app_deleted_stays_deleted_whatever_the_old_bucket_did_since(pair: Pair, tmp_path: Path) -> None:
    old, new, old_s3, new_s3 = pair.old, pair.new, pair.old_s3, pair.new_s3
    source, target = pair.source, pair.target
    old_s3.put_object(Bucket=old, Key="k", Body=b"v1")
    ledger = _ledgered(tmp_path, "deleted")
    sync_buckets(SyncOptions(f"s3://{old}", f"s3://{new}", source=source, target=target), PlainProgress(), ledger)
    old_s3.put_object(Bucket=old, Key="k", Body=b"v2 from a stale dyno")  # the old bucket changed it too
    new_s3.delete_object(Bucket=new, Key="k")  # and the app, after the switch, deleted it
    result = pair.after_switch(ledger)
    assert body(new_s3, new, "k") is None and result.kept_deleted == 1 and result.arrived == 0
    assert pair.verify(ledger).identical


def test_a_copy_that_landed_before_a_kill_wrote_it_down_is_still_ferrys(pair: Pair, tmp_path: Path) -> None:
    old, new, old_s3, new_s3 = pair.old, pair.new, pair.old_s3, pair.new_s3
    old_s3.put_object(Bucket=old, Key="k", Body=b"v1")
    etag = old_s3.head_object(Bucket=old, Key="k")["ETag"].strip('"')
    ledger = _ledgered(tmp_path, "intent")
    ledger.intend("k", etag)  # what the sync writes before a copy; the kill came before its record
    copy_object(old_s3, new_s3, parse_location(f"s3://{old}", "source"), parse_location(f"s3://{new}", "target"),
                "k", 2, etag, TransferSettings(server_side=False))  # fmt: skip
    old_s3.put_object(Bucket=old, Key="k", Body=b"v2")
    result = pair.after_switch(ledger)
    assert body(new_s3, new, "k") == b"v2" and result.conflicts == []  # replaced: it was ferry's, not the app's
    # An intention that never landed is no copy of ferry's: the object is brought over, not taken as deleted.
    old_s3.put_object(Bucket=old, Key="never", Body=b"n")
    ledger.intend("never", old_s3.head_object(Bucket=old, Key="never")["ETag"].strip('"'))
    assert pair.after_switch(ledger).arrived == 1
    assert body(new_s3, new, "never") == b"n"


def test_ferry_deletes_its_copy_only_as_it_listed_it_and_takes_a_race_it_lost_as_the_apps(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str], tmp_path: Path
) -> None:
    from migration.s3.aftersync import _delete_ferrys
    from migration.s3.listing import Change, ObjectInfo

    old, new = buckets
    new_s3 = s3(moto_pair[1])
    new_s3.put_object(Bucket=new, Key="k", Body=b"ferry's copy")
    listed = ObjectInfo("k", 12, new_s3.head_object(Bucket=new, Key="k")["ETag"].strip('"'))
    new_s3.put_object(Bucket=new, Key="k", Body=b"the app's upload, after the listing")
    dst = parse_location(f"s3://{new}", "target")
    assert _delete_ferrys(new_s3, dst, Change("delete", "k", None, listed)) is False
    assert body(new_s3, new, "k") == b"the app's upload, after the listing"
    # A replace whose object the app deleted in between (404) is the app's word too, not a failed phase.
    old_s3 = s3(moto_pair[0])
    old_s3.put_object(Bucket=old, Key="gone", Body=b"x")
    etag = old_s3.head_object(Bucket=old, Key="gone")["ETag"].strip('"')
    with pytest.raises(FerryError) as raised:
        copy_object(old_s3, new_s3, parse_location(f"s3://{old}", "source"), dst, "gone", 1, etag,
                    TransferSettings(server_side=False, if_etag="0" * 32))  # fmt: skip
    from migration.s3.aftersync import _lost_race

    assert _lost_race(raised.value) and body(new_s3, new, "gone") is None


def test_parts_of_unequal_sizes_are_copied_once_and_known_as_ferrys(pair: Pair, tmp_path: Path) -> None:
    old, new, old_s3, new_s3 = pair.old, pair.new, pair.old_s3, pair.new_s3
    source, target = pair.source, pair.target

    def upload(fill: bytes) -> None:
        created = old_s3.create_multipart_upload(Bucket=old, Key="irregular.bin")
        parts = []
        for number, size in ((1, 5 << 20), (2, 7 << 20)):
            reply = old_s3.upload_part(Bucket=old, Key="irregular.bin", UploadId=created["UploadId"],
                                       PartNumber=number, Body=fill * size)  # fmt: skip
            parts.append({"PartNumber": number, "ETag": reply["ETag"]})
        old_s3.complete_multipart_upload(Bucket=old, Key="irregular.bin", UploadId=created["UploadId"],
                                         MultipartUpload={"Parts": parts})  # fmt: skip

    upload(b"a")
    ledger = _ledgered(tmp_path, "irregular")
    options = SyncOptions(f"s3://{old}", f"s3://{new}", source=source, target=target)
    assert sync_buckets(options, PlainProgress(), ledger).copied == 1
    assert sync_buckets(options, PlainProgress(), ledger).copied == 0  # recognised, not copied again
    upload(b"b")  # a stale dyno after the last pass
    result = pair.after_switch(ledger)
    assert result.arrived == 1 and result.conflicts == []
    assert new_s3.get_object(Bucket=new, Key="irregular.bin", Range="bytes=0-0")["Body"].read() == b"b"
    assert pair.verify(ledger).identical


def test_a_conditional_copy_leaves_the_apps_unfinished_upload_of_the_key_alone(
    moto_pair: tuple[MotoServer, MotoServer], buckets: tuple[str, str]
) -> None:
    old, new = buckets
    old_s3, new_s3 = s3(moto_pair[0]), s3(moto_pair[1])
    old_s3.put_object(Bucket=old, Key="big", Body=b"z" * (6 << 20))
    etag = old_s3.head_object(Bucket=old, Key="big")["ETag"].strip('"')
    apps = new_s3.create_multipart_upload(Bucket=new, Key="big")["UploadId"]
    settings = TransferSettings(server_side=False, if_absent=True, single_part_limit=1 << 20, part_size=5 << 20)
    copy_object(old_s3, new_s3, parse_location(f"s3://{old}", "source"), parse_location(f"s3://{new}", "target"),
                "big", 6 << 20, etag, settings)  # fmt: skip
    uploads = new_s3.list_multipart_uploads(Bucket=new).get("Uploads", [])
    assert apps in [upload["UploadId"] for upload in uploads]
