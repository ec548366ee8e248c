"""``ferry s3 sync``: make the target prefix hold exactly what the source prefix holds.

Both listings are streamed and merged; each change goes to a pool of workers through a
bounded queue, so memory stays flat however many keys there are. What to copy is decided
by size and ETag, never by modification time; a second run over an unchanged bucket
lists and copies nothing. Deletions happen only with ``delete`` (and not at all on error).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from migration.crashpoints import crashpoint
from migration.progress import ProgressSink
from migration.s3.client import S3Location, S3Side, parse_location, s3_errors
from migration.s3.identity import refuse_overlap
from migration.s3.ledger import Ledger
from migration.s3.listing import Change, ahead, diff_listings, list_objects
from migration.s3.transfer import TransferSettings, copy_object, stored_source_etag

__all__ = ["SyncOptions", "SyncResult", "sync_buckets"]

#: Changes the diff may run ahead of the copies: about 30 MB at most, whatever the bucket's size.
_DIFF_AHEAD = 100_000


@dataclass(frozen=True)
class SyncOptions:
    """Everything ``ferry s3 sync`` takes.

    :param server_side: force (``True``) or forbid (``False``) server-side copies; by
        default they are used when both sides have the same identity and endpoint.
    """

    source_url: str
    target_url: str
    source: S3Side
    target: S3Side
    jobs: int = 16
    delete: bool = False
    dry_run: bool = False
    server_side: bool | None = None
    acl: str | None = None
    storage_class: str | None = None
    multipart_threshold: int = 64 * 1024 * 1024


@dataclass
class SyncResult:
    source: str
    target: str
    server_side: bool
    copied: int = 0
    copied_bytes: int = 0
    deleted: int = 0
    unchanged_checked: int = 0
    planned: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    #: Stopped before the end of the diff (asked to): not every change was made.
    interrupted: bool = False

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "source": self.source,
            "target": self.target,
            "server_side": self.server_side,
            "copied": self.copied,
            "copied_bytes": self.copied_bytes,
            "deleted": self.deleted,
            "seconds": round(self.seconds, 3),
        }
        if self.planned:
            data["planned"] = self.planned
        return data


def _changes(
    source_client: Any, target_client: Any, src: S3Location, dst: S3Location, same: bool = False
) -> Iterator[Change]:
    source, target = list_objects(source_client, src, "source"), list_objects(target_client, dst, "target")
    return diff_listings(source, target, same=same)


def sync_buckets(
    options: SyncOptions,
    progress: ProgressSink,
    ledger: Ledger | None = None,
    interrupted: Callable[[], bool] | None = None,
) -> SyncResult:
    """Sync *options.source_url* into *options.target_url*.

    :param ledger: where each key the target holds as ferry's copy is written down (with the source ETag
        it came from), copied now or found identical.
    :param interrupted: asked before each copy starts; once true no copy starts (those under way end) and
        nothing is deleted: the result says ``interrupted``.
    :raises FerryError: naming the side and bucket; nothing is deleted once an error occurred.
    """
    started = time.monotonic()
    src = parse_location(options.source_url, "source")
    dst = parse_location(options.target_url, "target")
    refuse_overlap(src, dst, options.source.endpoint_url, options.target.endpoint_url)
    source_client = options.source.client(options.jobs + 4)
    same_identity = options.source.identity() == options.target.identity()
    target_client = source_client if same_identity else options.target.client(options.jobs + 4)
    server_side = same_identity if options.server_side is None else options.server_side
    settings = TransferSettings(
        server_side=server_side, acl=options.acl, storage_class=options.storage_class,
        single_part_limit=options.multipart_threshold,
    )  # fmt: skip
    result = SyncResult(str(src), str(dst), server_side)
    progress.phase("sync")
    lock = threading.Lock()
    deletions: list[str] = []

    def noted(change: Change) -> None:
        assert change.source is not None
        if ledger is not None and ledger.ferrys(change.key) != (change.source.etag, None):
            ledger.record(change.key, change.source.etag)

    def work(change: Change) -> None:
        if change.action == "check":
            assert change.target is not None and change.source is not None
            if stored_source_etag(target_client, dst, change.key) == change.source.etag:
                with lock:
                    result.unchanged_checked += 1
                noted(change)
                return
        assert change.source is not None
        if ledger is not None:
            ledger.intend(change.key, change.source.etag)  # a kill before the record leaves it known as ferry's
        moved = copy_object(source_client, target_client, src, dst, change.key, change.source.size,
                            change.source.etag, settings)  # fmt: skip
        noted(change)
        with lock:
            result.copied += 1
            result.copied_bytes += moved
        crashpoint("s3-object")
        progress.advance("objects", 1, moved)

    def planned() -> Iterator[Change]:
        """The diff, counted: once both listings are read the total is known, and with it the ETA."""
        to_copy = 0
        for change in _changes(source_client, target_client, src, dst, same=ledger is not None):
            to_copy += change.action not in ("delete", "same")
            yield change
        progress.set_total(to_copy)

    pending: set[Future[None]] = set()
    with ThreadPoolExecutor(options.jobs, thread_name_prefix="ferry-s3") as pool:
        try:
            # The diff runs ahead of the copies (bounded): its total is known long before they end.
            # Asked while the listings run too: a hold inside the freeze does not wait for a page to arrive.
            for change in ahead(planned(), _DIFF_AHEAD, "ferry-s3-diff", give_up=interrupted):
                if interrupted is not None and interrupted():
                    result.interrupted = True
                    break
                if change.action == "delete":
                    deletions.append(change.key)
                    continue
                if change.action == "same":
                    noted(change)
                    continue
                if options.dry_run:
                    result.planned.append(
                        {"action": "copy", "key": change.key, "size": change.source.size if change.source else 0}
                    )
                    continue
                pending.add(pool.submit(work, change))
                if len(pending) >= options.jobs * 4:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()
            for future in pending:
                future.result()
            if interrupted is not None and interrupted():
                result.interrupted = True  # perhaps while the diff waited for a listing: not a whole pass
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    if options.delete and not result.interrupted:
        if options.dry_run:
            result.planned += [{"action": "delete", "key": key} for key in deletions]
        else:
            for start in range(0, len(deletions), 1000):
                crashpoint("s3-delete")
                batch = deletions[start : start + 1000]
                with s3_errors("target", dst.bucket):
                    target_client.delete_objects(
                        Bucket=dst.bucket, Delete={"Objects": [{"Key": dst.prefix + k} for k in batch], "Quiet": True}
                    )
                result.deleted += len(batch)
    elif deletions:
        progress.message(f"{len(deletions)} objects exist only on the target (kept; --delete removes them)")
    result.seconds = time.monotonic() - started
    return result
