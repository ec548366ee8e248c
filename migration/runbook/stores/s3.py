"""S3 in the runbook: its one strategy, a full sync while live and an incremental one inside the freeze."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from migration.runbook.context import RunSettings
from migration.runbook.state import StoreState
from migration.runbook.stores.base import ProgressFor, Side, Store, StoreRun, StoreVerify, Whereabouts
from migration.s3 import S3Side, SyncOptions, sync_buckets, verify_buckets
from migration.stackconfig import StackConfig

__all__ = ["S3Store", "SyncBuckets"]


@dataclass(frozen=True)
class BucketsSide:
    """One side's buckets, in the order the stack file lists them, and how to reach them."""

    credentials: S3Side
    buckets: tuple[str, ...]


S3Run: TypeAlias = StoreRun[StackConfig, StoreState, BucketsSide]


class SyncBuckets:
    """Every moved bucket synced while live, then again inside the freeze (what changed since)."""

    def sync(self, run: S3Run, progress_for: ProgressFor) -> str:
        done = []
        for source, target in zip(run.from_side.buckets, run.to_side.buckets, strict=True):
            options = SyncOptions(
                source_url=f"s3://{source}", target_url=f"s3://{target}",
                source=run.from_side.credentials, target=run.to_side.credentials,
            )  # fmt: skip
            progress = progress_for("objects")
            try:
                result = sync_buckets(options, progress)
            finally:
                progress.close()
            done.append(f"s3 {source} → {target}: {result.copied} copied")
        return "; ".join(done)

    def verify(self, run: S3Run) -> list[StoreVerify]:
        reports = []
        for source, target in zip(run.from_side.buckets, run.to_side.buckets, strict=True):
            report = verify_buckets(f"s3://{source}", f"s3://{target}")
            reports.append(StoreVerify.of(f"s3:{source}", report))
        return reports


class S3Store(Store[StackConfig, StoreState, BucketsSide]):
    name = "s3"
    section = StoreState
    strategy = SyncBuckets()

    def configure(self, config: StackConfig, settings: RunSettings) -> StackConfig:
        return config  # the buckets' names are the stack file's: the endpoints read them

    def moves(self, config: StackConfig, where: Whereabouts) -> bool:
        return bool(_bucket_pairs(config))

    def endpoint(self, where: Whereabouts, side: Side) -> BucketsSide:
        pairs = _bucket_pairs(where.config)
        return BucketsSide(S3Side.from_env(side), tuple(pairs) if side == "source" else tuple(pairs.values()))

    def recorded(self, run: S3Run) -> dict[str, Any]:
        return {"buckets": dict(zip(run.from_side.buckets, run.to_side.buckets, strict=True))}

    def copy_live(self, run: S3Run) -> str:
        from migration.progress import make_progress

        # The live Redis copy reports to its log file: S3 has the terminal to itself.
        return self.strategy.sync(run, lambda unit: make_progress(unit=unit))

    def final_sync(self, run: S3Run, progress_for: ProgressFor) -> str:
        return self.strategy.sync(run, progress_for)

    def verify(self, run: S3Run) -> list[StoreVerify]:
        return self.strategy.verify(run)


def _bucket_pairs(config: StackConfig) -> dict[str, str]:
    """Source bucket → target bucket, for each bucket the stack file moves."""
    storage = config.storage
    if not config.migration.s3 or storage is None:
        return {}
    return {
        bucket.source: storage.bucket_name(config.app, config.stack, bucket)
        for bucket in storage.buckets
        if bucket.source
    }
