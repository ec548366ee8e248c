"""PostgreSQL in the runbook: copied inside the freeze (until change capture lands)."""

from __future__ import annotations

from dataclasses import replace

from migration.errors import ResumeError
from migration.postgres import (
    CopyOptions,
    copy_database,
    preflight_database,
    set_read_only,
    target_is_empty,
    verify_databases,
)
from migration.preflight import PreflightReport
from migration.runbook.context import RunContext, Sources, Targets
from migration.runbook.stores.base import ProgressFor, Store, StoreVerify

__all__ = ["PostgresStore"]


class PostgresStore(Store):
    name = "postgres"

    def moves(self, ctx: RunContext, sources: Sources) -> bool:
        return ctx.config.migration.postgres

    def preflight(self, ctx: RunContext, sources: Sources, targets: Targets) -> PreflightReport:
        return preflight_database(sources.database_url, targets.database_url, jobs=_jobs(ctx))

    def copy_live(self, ctx: RunContext, sources: Sources, targets: Targets) -> str:
        return "postgres: copied inside the freeze (no change capture yet)"

    def freeze_writes(self, ctx: RunContext, sources: Sources) -> str:
        set_read_only(sources.database_url, True)
        return "app's database role set read-only; its sessions ended"

    def unfreeze_writes(self, ctx: RunContext, sources: Sources) -> str:
        set_read_only(sources.database_url, False)
        return "app's database role read-write again"

    def final_sync(self, ctx: RunContext, sources: Sources, targets: Targets, progress_for: ProgressFor) -> str:
        state = self.state(ctx)
        resume, state.copy_started = state.copy_started, True
        ctx.save()
        options = CopyOptions(source_url=sources.database_url, target_url=targets.database_url, jobs=_jobs(ctx))
        progress = progress_for("bytes")
        try:
            if state.recopy:
                # The app wrote to the source after an earlier final copy (a failed verify unfroze it):
                # that copy is stale, and the target holds nothing but it.
                result = copy_database(replace(options, clean=True), progress)
                state.recopy = False
                ctx.save()
                return f"postgres: {result.rows} rows in {len(result.tables)} tables (copied again)"
            try:
                result = copy_database(replace(options, resume=resume), progress)
            except ResumeError:
                # The previous attempt either never began writing or had finished: the target says which.
                if not target_is_empty(targets.database_url):
                    return "postgres: the copy had finished before the interruption (verify checks it)"
                result = copy_database(options, progress)
        finally:
            progress.close()
        return f"postgres: {result.rows} rows in {len(result.tables)} tables" + (" (resumed)" if result.resumed else "")

    def verify(self, ctx: RunContext, sources: Sources, targets: Targets) -> list[StoreVerify]:
        report = verify_databases(
            sources.database_url,
            targets.database_url,
            mode="full" if ctx.settings.verify_mode == "full" else "quick",
            jobs=_jobs(ctx),
        )
        return [StoreVerify.of("postgres", report)]

    def forget_copy(self, ctx: RunContext) -> None:
        state = self.state(ctx)
        state.recopy, state.copy_started = state.copy_started, False


def _jobs(ctx: RunContext) -> int:
    return ctx.settings.jobs or ctx.config.migration.jobs
