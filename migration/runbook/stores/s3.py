"""S3 in the runbook: a full sync while live, an incremental one inside the freeze."""

from __future__ import annotations

from migration.runbook.context import RunContext, Sources, Targets
from migration.runbook.stores.base import ProgressFor, Store, StoreVerify
from migration.s3 import S3Side, SyncOptions, sync_buckets, verify_buckets

__all__ = ["S3Store"]


class S3Store(Store):
    name = "s3"

    def moves(self, ctx: RunContext, sources: Sources) -> bool:
        return bool(ctx.bucket_pairs())

    def copy_live(self, ctx: RunContext, sources: Sources, targets: Targets) -> str:
        from migration.progress import make_progress

        # The live Redis copy reports to its log file: S3 has the terminal to itself.
        return _sync(targets, lambda unit: make_progress(unit=unit))

    def final_sync(self, ctx: RunContext, sources: Sources, targets: Targets, progress_for: ProgressFor) -> str:
        return _sync(targets, progress_for)

    def verify(self, ctx: RunContext, sources: Sources, targets: Targets) -> list[StoreVerify]:
        reports = []
        for source, target in targets.buckets.items():
            report = verify_buckets(f"s3://{source}", f"s3://{target}")
            reports.append(StoreVerify.of(f"s3:{source}", report))
        return reports


def _sync(targets: Targets, progress_for: ProgressFor) -> str:
    source_side, target_side = S3Side.from_env("source"), S3Side.from_env("target")
    done = []
    for source, target in targets.buckets.items():
        options = SyncOptions(
            source_url=f"s3://{source}", target_url=f"s3://{target}", source=source_side, target=target_side
        )
        progress = progress_for("objects")
        try:
            result = sync_buckets(options, progress)
        finally:
            progress.close()
        done.append(f"s3 {source} → {target}: {result.copied} copied")
    return "; ".join(done)
