"""Phase ``verify``: every moved store compared with its source, inside the freeze."""

from __future__ import annotations

from typing import Any

from migration.errors import RunbookError
from migration.runbook.context import RunContext

__all__ = ["verify"]


def verify(ctx: RunContext) -> str:
    sources, targets = ctx.sources(), ctx.targets()
    results: dict[str, Any] = {}
    differences: list[str] = []
    if ctx.config.migration.postgres:
        from migration.postgres.verify import verify_databases

        report = verify_databases(
            sources.database_url,
            targets.database_url,
            mode="full" if ctx.settings.verify_mode == "full" else "quick",
            jobs=ctx.settings.jobs or ctx.config.migration.jobs,
        )
        results["postgres"] = report.to_json()
        differences += [f"postgres {d.kind} {d.name}" for d in report.differences]
    if ctx.moves_redis and sources.redis_url and targets.redis_url:
        from migration.redis.verify import verify_redis

        redis_report = verify_redis(sources.redis_url, targets.redis_url, tls_skip_verify=False)
        results["redis"] = redis_report.to_json()
        differences += [f"redis {d.kind} {d.key}" for d in redis_report.differences]
    if targets.buckets:
        from migration.runbook.copy import s3_sides
        from migration.s3.verify import verify_buckets

        source_side, target_side = s3_sides()
        for source, target in targets.buckets.items():
            s3_report = verify_buckets(f"s3://{source}", f"s3://{target}", source_side, target_side)
            results[f"s3:{source}"] = s3_report.to_json()
            differences += [f"s3 {d.kind} {d.key}" for d in s3_report.differences]
    ctx.state.facts["verify"] = results
    ctx.save()
    if differences:
        raise RunbookError(
            f"verify found {len(differences)} differences (first: {differences[0]}); nothing was switched"
        )
    return "identical: " + ", ".join(results) if results else "nothing to verify"
