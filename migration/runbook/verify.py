"""Phase ``verify``: every moved store compared with its source, inside the freeze."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migration.errors import DifferencesFoundError
from migration.runbook.context import RunContext, Sources, Targets
from migration.runbook.parallel import side_by_side

__all__ = ["verify"]


def verify(ctx: RunContext) -> str:
    sources, targets = ctx.sources(), ctx.targets()
    tasks: dict[str, Callable[[], list[tuple[str, dict[str, Any], list[str]]]]] = {}
    if ctx.config.migration.postgres:
        tasks["postgres"] = lambda: _postgres(ctx, sources, targets)
    if ctx.moves_redis and sources.redis_url and targets.redis_url:
        tasks["redis"] = lambda: _redis(sources, targets)
    if targets.buckets:
        tasks["s3"] = lambda: _buckets(targets)
    results: dict[str, Any] = {}
    differences: list[str] = []
    for reports in side_by_side(tasks).values():
        for name, report, found in reports:
            results[name] = report
            differences += found
    ctx.state.facts["verify"] = results
    ctx.save()
    if differences:
        raise DifferencesFoundError(
            f"verify found {len(differences)} differences (first: {differences[0]}); nothing was switched"
        )
    return "identical: " + ", ".join(results) if results else "nothing to verify"


def _postgres(ctx: RunContext, sources: Sources, targets: Targets) -> list[tuple[str, dict[str, Any], list[str]]]:
    from migration.postgres.verify import verify_databases

    report = verify_databases(
        sources.database_url,
        targets.database_url,
        mode="full" if ctx.settings.verify_mode == "full" else "quick",
        jobs=ctx.settings.jobs or ctx.config.migration.jobs,
    )
    return [("postgres", report.to_json(), [f"postgres {d.kind} {d.name}" for d in report.differences])]


def _redis(sources: Sources, targets: Targets) -> list[tuple[str, dict[str, Any], list[str]]]:
    from migration.redis.verify import verify_redis

    assert sources.redis_url is not None and targets.redis_url is not None
    report = verify_redis(sources.redis_url, targets.redis_url, tls_skip_verify=False)
    return [("redis", report.to_json(), [f"redis {d.kind} {d.key}" for d in report.differences])]


def _buckets(targets: Targets) -> list[tuple[str, dict[str, Any], list[str]]]:
    from migration.s3.client import S3Side
    from migration.s3.verify import verify_buckets

    source_side, target_side = S3Side.from_env("source"), S3Side.from_env("target")
    reports = []
    for source, target in targets.buckets.items():
        report = verify_buckets(f"s3://{source}", f"s3://{target}", source_side, target_side)
        reports.append((f"s3:{source}", report.to_json(), [f"s3 {d.kind} {d.key}" for d in report.differences]))
    return reports
