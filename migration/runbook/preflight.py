"""Phase ``preflight``: the source answers, the platform answers, the targets can take the copy."""

from __future__ import annotations

from migration.errors import PreconditionError
from migration.preflight import PreflightReport
from migration.runbook.context import RunContext

__all__ = ["preflight"]


def preflight(ctx: RunContext) -> str:
    formation = ctx.platform.formation()
    checked = [f"{ctx.platform.description}: {sum(formation.values())} dynos"]
    _check_freeze(ctx)
    if ctx.settings.uses_stack and not ctx.state.done("provision"):
        ctx.sources()  # the source's URLs are there; the target does not exist yet
        return "; ".join([*checked, "target checks run after provision, before the copy"])
    copying_began = "copy" in ctx.state.phases or "final-sync" in ctx.state.phases
    return "; ".join([*checked, check_targets(ctx, copying_began=copying_began)])


def check_targets(ctx: RunContext, *, copying_began: bool) -> str:
    """Source and target checks of every moved store; a failed check stops the run before the freeze.

    Run by ``preflight`` when the target exists, else by ``copy`` right after ``provision``.

    :param copying_began: an earlier attempt copied already: the target is meant to hold data
        then, so failed checks are reported but do not stop the run.
    """
    sources, targets = ctx.sources(), ctx.targets()
    reports: list[tuple[str, PreflightReport]] = []
    if ctx.config.migration.postgres:
        from migration.postgres.preflight import preflight as pg_preflight

        reports.append(("postgres", pg_preflight(sources.database_url, targets.database_url, jobs=_jobs(ctx))))
    if ctx.moves_redis and sources.redis_url and targets.redis_url:
        from migration.redis.preflight import redis_preflight

        reports.append(("redis", redis_preflight(sources.redis_url, targets.redis_url, tls_skip_verify=False)))
    checked: list[str] = []
    for store, report in reports:
        failed = [check for check in report.checks if check.status == "fail"]
        never_ignored = [check for check in failed if check.name == "target is not the source"]
        if never_ignored:
            failed = never_ignored
        if failed and (never_ignored or not copying_began):
            raise PreconditionError(f"{store} preflight: {failed[0].name}: {failed[0].detail}")
        checked.append(f"{store}: {len(report.checks)} checks")
    ctx.state.facts["targets_checked"] = True
    ctx.save()
    return "; ".join(checked) or "no store to check"


def _check_freeze(ctx: RunContext) -> None:
    """The freeze must be able to stop every moved store's writes: found out now, not inside it."""
    if ctx.config.migration.freeze != "read-only" or not ctx.moves_redis:
        return
    from migration.redis.freeze import can_pause_writes

    redis_url = ctx.sources().redis_url
    reason = can_pause_writes(redis_url) if redis_url else None
    if reason is not None:
        raise PreconditionError(f"freeze read-only: {reason}; use migration.freeze: maintenance", side="source")


def _jobs(ctx: RunContext) -> int:
    return ctx.settings.jobs or ctx.config.migration.jobs
