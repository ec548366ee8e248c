"""The sync after the switch: what reached the old bucket since the last live pass, brought over without
touching what the app has written to the new bucket since it moved there.

The app writes to the new bucket from the switch on, and an old dyno may still write to the old one for
a moment; so the old bucket is diffed against the new one once more, under rules no plain sync has:

- an object the new bucket lacks is copied, unless a copy of ferry's had landed there (then the app
  deleted it since the switch, its last word: it stays deleted); the write is conditional
  (``If-None-Match: *``), so an upload of the same key by the app in between wins;
- an object that differs is replaced only where the new bucket still holds ferry's unchanged copy
  (``If-Match`` its ETag); where the app wrote it since, the app's, newer, stays: a conflict, reported;
- an object only the new bucket holds is deleted only where it is ferry's unchanged copy (the old one was
  deleted after the last pass), and only as listed (``If-Match``): any other is the app's upload.

"ferry's unchanged copy" is what the :class:`~migration.s3.ledger.Ledger` says ferry copied, matching what
the new bucket holds now. The check after it lists both sides again: nothing left to copy or delete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions

from migration.errors import FerryError
from migration.s3.client import S3Location, S3Side, parse_location, s3_errors
from migration.s3.ledger import Ledger
from migration.s3.listing import Change, diff_listings, list_objects
from migration.s3.transfer import TransferSettings, copy_object, stored_source_etag
from migration.verify import Difference, VerifyReport

__all__ = ["AfterSwitchResult", "AfterSwitchVerify", "sync_after_switch", "verify_after_switch"]


@dataclass
class AfterSwitchResult:
    """:param arrived: objects that reached the old bucket after the last live pass (copied now).
    :param lag_seconds: the longest any of them waited for its copy, from its write to the old bucket.
    :param conflicts: keys the app wrote to the new bucket since the switch that the old one changed too
        (the app's, newer, kept)."""

    arrived: int = 0
    deleted: int = 0
    kept_deleted: int = 0
    lag_seconds: float = 0.0
    conflicts: list[str] = field(default_factory=list)
    #: Objects a stray deleted or replaced on a side only strays wrote to, brought again (``target_strays``).
    replaced_strays: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "arrived_after_switch": self.arrived,
            "deleted": self.deleted,
            "deleted_by_app_kept": self.kept_deleted,
            "lag_seconds": round(self.lag_seconds, 3),
            "conflicts": self.conflicts,
        }


def _ferrys_copy(client: Any, dst: S3Location, change: Change, ferrys: tuple[str | None, str | None]) -> bool:
    """The new bucket's object is still one ferry wrote (a copy it saw land, or one begun when it was killed)."""
    target = change.target
    known = {etag for etag in ferrys if etag is not None}
    if not known or target is None:
        return False
    if target.etag in known:
        return True
    return target.multipart and stored_source_etag(client, dst, change.key) in known


def _same(client: Any, dst: S3Location, change: Change) -> bool:
    assert change.source is not None
    if change.action == "same":
        return True
    return change.action == "check" and stored_source_etag(client, dst, change.key) == change.source.etag


def _lost_race(exc: FerryError) -> bool:
    """The condition of a write failed: the app wrote (412), or deleted (404), the key in between."""
    cause = exc.__cause__
    return isinstance(cause, botocore.exceptions.ClientError) and cause.response.get("Error", {}).get("Code") in (
        "PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404",
    )  # fmt: skip


def _delete_ferrys(client: Any, dst: S3Location, change: Change) -> bool:
    """Delete ferry's copy only as it was listed (``If-Match``): an upload of the key in between stays."""
    assert change.target is not None
    try:
        with s3_errors("target", dst.bucket):
            client.delete_object(Bucket=dst.bucket, Key=dst.prefix + change.key, IfMatch=f'"{change.target.etag}"')
    except FerryError as exc:
        if not _lost_race(exc):
            raise
        return False
    return True


def sync_after_switch(
    source_url: str, target_url: str, source: S3Side, target: S3Side, ledger: Ledger, *, target_strays: bool = False
) -> AfterSwitchResult:
    """Bring over what the old bucket (*source_url*) took since the last pass, by the rules above.

    :param target_strays: nothing but strays wrote to the target since the switch (the old bucket, synced back
        before a rollback switches the app to it): where one deleted or replaced ferry's copy, the source's
        object is brought again (counted in ``replaced_strays``); an object only a stray uploaded stays.
    :raises FerryError: naming the side and bucket.
    """
    src, dst = parse_location(source_url, "source"), parse_location(target_url, "target")
    source_client, target_client = source.client(), target.client()
    result = AfterSwitchResult()
    changes = diff_listings(
        list_objects(source_client, src, "source"), list_objects(target_client, dst, "target"), same=True
    )
    for change in changes:
        ferrys = ledger.ferrys(change.key)
        if change.source is None:  # only in the new bucket
            if _ferrys_copy(target_client, dst, change, ferrys):
                if _delete_ferrys(target_client, dst, change):
                    ledger.forget(change.key)
                    result.deleted += 1
                else:
                    result.conflicts.append(change.key)
            continue
        if change.target is not None and _same(target_client, dst, change):
            if ferrys != (change.source.etag, None):
                ledger.record(change.key, change.source.etag)
            continue
        if change.target is None and ferrys[0] is not None:
            if not target_strays:
                # ferry's copy of it had landed there: the app deleted it since the switch, its last word.
                result.kept_deleted += 1
                continue
            result.replaced_strays += 1
        elif change.target is not None and not _ferrys_copy(target_client, dst, change, ferrys):
            if not target_strays:
                result.conflicts.append(change.key)
                continue
            result.replaced_strays += 1
        settings = TransferSettings(
            server_side=False,  # conditional writes hold for PutObject and CompleteMultipartUpload everywhere
            if_absent=change.target is None,
            if_etag=change.target.etag if change.target is not None else None,
        )
        ledger.intend(change.key, change.source.etag)
        try:
            copy_object(source_client, target_client, src, dst, change.key, change.source.size, change.source.etag,
                        settings)  # fmt: skip
        except FerryError as exc:
            if not _lost_race(exc):
                raise
            result.conflicts.append(change.key)  # the app wrote or deleted it in between: its word stays
            continue
        ledger.record(change.key, change.source.etag)
        result.arrived += 1
        result.lag_seconds = max(result.lag_seconds, time.time() - change.source.modified_at)
    return result


@dataclass
class AfterSwitchVerify(VerifyReport):
    """Both buckets after the switch: every old object in the new bucket, or the app's newer write there."""

    store: str = "s3"
    source_objects: int = 0
    target_objects: int = 0
    app_written: int = 0

    def checked(self) -> dict[str, int]:
        return {"objects": self.source_objects}

    def details(self) -> dict[str, Any]:
        return {"target_objects": self.target_objects, "written_by_the_app_since_the_switch": self.app_written}

    def summary(self) -> str:
        return (
            f"{self.source_objects} old objects, {self.target_objects} new ({self.app_written} the app's since the "
            f"switch), in {self.seconds:.1f} s"
        )


def verify_after_switch(
    source_url: str, target_url: str, source: S3Side, target: S3Side, ledger: Ledger
) -> AfterSwitchVerify:
    """List both buckets again: nothing the rules would still copy or delete."""
    started = time.monotonic()
    src, dst = parse_location(source_url, "source"), parse_location(target_url, "target")
    source_client, target_client = source.client(), target.client()
    report = AfterSwitchVerify()
    for change in diff_listings(
        list_objects(source_client, src, "source"), list_objects(target_client, dst, "target"), same=True
    ):
        report.source_objects += change.source is not None
        report.target_objects += change.target is not None
        ferrys = ledger.ferrys(change.key)
        if change.source is None:
            if _ferrys_copy(target_client, dst, change, ferrys):
                report.add(Difference("deleted on the old side, left on the new", change.key, "-", "ferry's copy"))
            else:
                report.app_written += 1
        elif change.target is None:
            if ferrys[0] is None:  # never landed there: not a delete of the app's
                report.add(Difference("missing on target", change.key, str(change.source.size), "-"))
        elif not _same(target_client, dst, change):
            if _ferrys_copy(target_client, dst, change, ferrys):
                report.add(Difference("checksum", change.key, change.source.etag, change.target.etag))
            else:
                report.app_written += 1
    report.seconds = time.monotonic() - started
    return report
