"""Phase ``preflight``: the source answers, the platform answers, the targets can take the copy."""

from __future__ import annotations

from migration.errors import PreconditionError
from migration.preflight import PreflightReport
from migration.runbook.context import RunContext

__all__ = ["preflight"]


def preflight(ctx: RunContext) -> str:
    sources = ctx.sources()
    formation = ctx.platform.formation()
    checked: list[str] = [f"{ctx.platform.description}: {sum(formation.values())} dynos"]
    if ctx.settings.uses_stack and not ctx.state.done("provision"):
        # The target does not exist yet: the provision phase builds it, and final sync checks it.
        return "; ".join([*checked, "target checks wait for provision"])
    targets = ctx.targets()
    reports: list[tuple[str, PreflightReport]] = []
    if ctx.config.migration.postgres:
        from migration.postgres.preflight import preflight as pg_preflight

        reports.append(("postgres", pg_preflight(sources.database_url, targets.database_url, jobs=_jobs(ctx))))
    if ctx.moves_redis and sources.redis_url and targets.redis_url:
        from migration.redis.preflight import redis_preflight

        reports.append(
            (
                "redis",
                redis_preflight(sources.redis_url, targets.redis_url, tls_skip_verify=False),
            )
        )
    for store, report in reports:
        failed = [check for check in report.checks if check.status == "fail"]
        if failed and not (ctx.state.phases.get("copy") or ctx.state.phases.get("final-sync")):
            raise PreconditionError(f"{store} preflight: {failed[0].name}: {failed[0].detail}")
        checked.append(f"{store}: {len(report.checks)} checks")
    return "; ".join(checked)


def _jobs(ctx: RunContext) -> int:
    return ctx.settings.jobs or ctx.config.migration.jobs
