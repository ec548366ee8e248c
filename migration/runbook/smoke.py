"""Phase ``smoke``: the app's configured URLs answer 2xx or 3xx after the unfreeze."""

from __future__ import annotations

import time

import httpx

from migration.errors import SmokeFailedError
from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome, done

__all__ = ["SmokeFailedError", "smoke"]

_ATTEMPTS = 3


def _check(client: httpx.Client, url: str) -> str | None:
    """``None`` when the URL answers well; else what went wrong. Retried: dynos take a moment to restart."""
    problem = "not tried"
    for attempt in range(_ATTEMPTS):
        try:
            status = client.get(url).status_code
            if status < 400:
                return None
            problem = f"HTTP {status}"
        except httpx.HTTPError as exc:
            problem = type(exc).__name__
        time.sleep(0.5 * (attempt + 1))
    return problem


def smoke(ctx: RunContext) -> PhaseOutcome:
    urls = [*ctx.config.migration.smoke_urls, *ctx.settings.smoke_urls]
    if not urls:
        return done("no smoke URLs configured")
    with httpx.Client(timeout=10.0, follow_redirects=False) as client:
        failures = [(url, problem) for url in urls if (problem := _check(client, url)) is not None]
    if failures:
        url, problem = failures[0]
        raise SmokeFailedError(f"smoke: {len(failures)} of {len(urls)} URLs failed (first: {url}: {problem})")
    return done(f"{len(urls)} URLs answered")
