"""The live S3 follow: the buckets synced again and again while the app uploads, each pass a listing diff.

S3 has no change stream ferry can count on everywhere (event notifications need the bucket owner's
configuration, and a Heroku app's bucket is often another account's), so the follower compares listings on
an interval: each pass copies what changed since the last one, writes every copy down in the pair's
:class:`~migration.s3.ledger.Ledger`, and reports its lag (how long ago the last complete pass began)
in the status file the runbook reads. Deletions wait for the sync after the switch, which knows which
objects in the new bucket are ferry's. While a hold file exists (the runbook's freeze), no pass runs: the
drain has the cores, and by the switch nothing of ferry's is in flight into the new buckets.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from migration.files import replace_file
from migration.progress import ProgressSink
from migration.s3.client import S3Side
from migration.s3.ledger import Ledger
from migration.s3.sync import SyncOptions, sync_buckets

__all__ = ["FollowedBuckets", "follow_buckets", "hold_path", "ledger_path"]


@dataclass
class FollowedBuckets:
    passes: int = 0
    copied: int = 0


def hold_path(status_file: Path) -> Path:
    """While this file exists, the follower begins no new pass."""
    return status_file.with_suffix(".hold")


def ledger_path(directory: Path, source_bucket: str, target_bucket: str) -> Path:
    """Where the ledger of one bucket pair is kept."""
    return directory / f"s3-{source_bucket}-{target_bucket}.ledger"


def _write_status(path: Path, phase: str, queued: int, behind: float, applied: int) -> None:
    """*queued* is 0 for S3: what is waiting is unknown until the next listing (*behind* says how stale)."""
    data = {"phase": phase, "queued": queued, "seconds_behind": round(behind, 3), "consistent": queued == 0,
            "at": time.time(), "applied": applied}  # fmt: skip
    replace_file(path, json.dumps(data))


def follow_buckets(
    pairs: Sequence[tuple[str, str]],
    source: S3Side,
    target: S3Side,
    ledger_dir: Path,
    status_file: Path,
    progress: ProgressSink,
    stop: Callable[[], bool],
    *,
    interval: float = 2.0,
    jobs: int = 16,
) -> FollowedBuckets:
    """Sync every (source, target) bucket pair, then again every *interval* seconds until *stop* says so.

    A stop or a hold ends the pass under way at once (the copies in flight land and are written down);
    while held the status says ``held``: nothing of ferry's is on its way into the new buckets.

    :raises FerryError: a pass failed (naming the side and bucket); the ledger keeps what was copied.
    """
    result = FollowedBuckets()
    ledgers = [Ledger(ledger_path(ledger_dir, old, new)) for old, new in pairs]
    held = hold_path(status_file)
    began_last, copied = time.time(), 0

    def interrupted() -> bool:
        return stop() or held.exists()

    try:
        while not stop():
            if held.exists():
                # Nothing of ferry's in flight into the new buckets from now on: the switch may come.
                _write_status(status_file, "held", 0, time.time() - began_last, result.copied)
                time.sleep(0.05)
                continue
            # Said before any copy: a "held" left from an earlier freeze must not stand for this pass ("live" only
            # once a first pass is complete: what the copy phase waits for).
            _write_status(status_file, "live" if result.passes else "scan", 0, time.time() - began_last, result.copied)
            began, copied, complete = time.time(), 0, True
            for (old, new), ledger in zip(pairs, ledgers, strict=True):
                options = SyncOptions(f"s3://{old}", f"s3://{new}", source=source, target=target, jobs=jobs)
                synced = sync_buckets(options, progress, ledger, interrupted)
                copied += synced.copied
                complete = complete and not synced.interrupted
            result.copied += copied
            if complete:
                result.passes += 1
                began_last = began
            deadline, said = time.monotonic() + interval, 0.0
            while time.monotonic() < deadline and not interrupted():
                if time.monotonic() - said >= 0.5:
                    # What is waiting is unknown until the next listing: the lag is the time since the last pass.
                    _write_status(status_file, "live", 0, time.time() - began_last, result.copied)
                    said = time.monotonic()
                time.sleep(0.02)  # a hold is the freeze waiting: noticed within this
        # No last pass: after the switch only the sync that knows the app's writes may write to the new buckets.
        _write_status(status_file, "stopped", 0, time.time() - began_last, result.copied)
    finally:
        for ledger in ledgers:
            ledger.close()
    return result
