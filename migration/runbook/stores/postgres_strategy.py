"""How the PostgreSQL store moves its data: the interface of its strategies, and the simplest one.

:class:`CopyInFreeze` copies the whole database inside the freeze; :class:`~.postgres_capture.CaptureAndFollow`
copies while the app writes and follows the change log, so the freeze only drains it. The store
(:mod:`.postgres`) picks one from the stack file, once, and hands it the phases that differ; what
every strategy does alike (preflight, stopping and reopening the source's writes) stays in the store.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

from migration.errors import ResumeError
from migration.postgres import (
    CopyOptions,
    CopyResult,
    capture_errors,
    connect_source,
    connect_target,
    copy_database,
    sync_sequences,
    target_is_empty,
    verify_databases,
)
from migration.progress import ProgressSink
from migration.runbook.context import RunContext, Sources, Targets
from migration.runbook.follower import Follower, FollowerStatus
from migration.runbook.state import StoreState
from migration.runbook.stores.base import ProgressFor, StoreVerify

__all__ = ["CopyInFreeze", "PostgresStrategy", "StoreParts", "copy_resuming", "jobs_of", "sync_sequences_between"]


class StoreParts(Protocol):
    """What a strategy may use of its store: its name, its state section, its follower."""

    name: str

    def state(self, ctx: RunContext) -> StoreState: ...

    def follower(self, ctx: RunContext) -> Follower: ...


class PostgresStrategy:
    """The phases whose work depends on how the data moves. The defaults are what a copy inside the freeze needs."""

    def __init__(self, store: StoreParts) -> None:
        self.store = store

    def copy_live(self, ctx: RunContext, sources: Sources, targets: Targets) -> str:
        return ""

    def live_status(self, ctx: RunContext) -> FollowerStatus | None:
        return None

    def catch_up(self, ctx: RunContext, sources: Sources, targets: Targets) -> str:
        return ""

    def writes_stopped(self, ctx: RunContext, sources: Sources) -> str:
        return ""

    def final_sync(self, ctx: RunContext, sources: Sources, targets: Targets, progress_for: ProgressFor) -> str:
        raise NotImplementedError

    def verify(self, ctx: RunContext, sources: Sources, targets: Targets) -> list[StoreVerify]:
        report = verify_databases(
            sources.database_url,
            targets.database_url,
            mode="full" if ctx.settings.verify_mode == "full" else "quick",
            jobs=jobs_of(ctx),
        )
        return [StoreVerify.of(self.store.name, report)]

    def prove_frozen(self, ctx: RunContext, sources: Sources, targets: Targets) -> list[StoreVerify]:
        return []

    def finish_target(self, ctx: RunContext, targets: Targets) -> str:
        return ""

    def cleanup(self, ctx: RunContext, sources: Sources) -> str:
        return ""


class CopyInFreeze(PostgresStrategy):
    """The whole database copied inside the freeze (``migration.capture: false``)."""

    def copy_live(self, ctx: RunContext, sources: Sources, targets: Targets) -> str:
        return "postgres: copied inside the freeze (capture is off)"

    def final_sync(self, ctx: RunContext, sources: Sources, targets: Targets, progress_for: ProgressFor) -> str:
        state = self.store.state(ctx)
        resume, state.copy_started = state.copy_started, True
        ctx.save()
        options = CopyOptions(source_url=sources.database_url, target_url=targets.database_url, jobs=jobs_of(ctx))
        progress = progress_for("bytes")
        try:
            if state.recopy:
                # The app wrote to the source after an earlier final copy (a failed verify unfroze it):
                # that copy is stale, and the target holds nothing but it.
                again = copy_database(replace(options, clean=True), progress)
                state.recopy = False
                ctx.save()
                return f"postgres: {again.rows} rows in {len(again.tables)} tables (copied again)"
            result = copy_resuming(options, progress, resume=resume)
        finally:
            progress.close()
        if result is None:
            return "postgres: the copy had finished before the interruption (verify checks it)"
        return f"postgres: {result.rows} rows in {len(result.tables)} tables" + (" (resumed)" if result.resumed else "")


def copy_resuming(options: CopyOptions, progress: ProgressSink, *, resume: bool) -> CopyResult | None:
    """Copy, resuming an earlier attempt when there was one; ``None`` when that attempt had finished."""
    if not resume:
        return copy_database(options, progress)
    try:
        return copy_database(replace(options, resume=True), progress)
    except ResumeError:
        # Nothing to resume: the earlier attempt had finished, or never began writing (the target says which).
        if not target_is_empty(options.target_url):
            return None
        return copy_database(options, progress)


def sync_sequences_between(sources: Sources, targets: Targets) -> None:
    # nextval() takes no write the fence could refuse: a sequence the app moved since comes again.
    with connect_source(sources.database_url) as src, connect_target(targets.database_url) as dst, capture_errors():
        sync_sequences(src, dst)


def jobs_of(ctx: RunContext) -> int:
    return ctx.settings.jobs or ctx.config.migration.jobs
