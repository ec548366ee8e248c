"""Phase ``record`` (and ``ferry record``): endpoints, timings and a stack export, for the run's records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from migration.redact import redact
from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome, done
from migration.runbook.stores import moved_stores

__all__ = ["record"]


def _endpoint(url: str | None) -> str | None:
    """host:port/database of a URL, without user or password."""
    if not url:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or ''}{parts.path}"


def record(ctx: RunContext) -> PhaseOutcome:
    targets = ctx.targets()
    data: dict[str, Any] = {
        "stack": ctx.settings.stack,
        "app": ctx.config.heroku.app,
        "targets": {
            "postgres": _endpoint(targets.database_url),
            "redis": _endpoint(targets.redis_url),
            "buckets": targets.buckets,
        },
        "phases": {
            name: {"status": r.status, "seconds": r.seconds, "detail": r.detail} for name, r in ctx.state.phases.items()
        },
        "verify": ctx.state.verify,
    }
    written = [_write(ctx.settings.state_dir / "record.json", data)]
    if ctx.settings.uses_stack:
        outputs = ctx.stack_outputs()
        data["stack_outputs"] = outputs.masked()
        written[0] = _write(ctx.settings.state_dir / "record.json", data)
        written.append(_write(ctx.settings.state_dir / "stack-export.json", ctx.infra.export()))
    sources = ctx.sources()
    stores = moved_stores(ctx, sources)
    cleaned = [d for d in (store.finish_target(ctx, targets) for store in stores) if d]
    cleaned += [d for d in (store.cleanup(ctx, sources) for store in stores) if d]
    return done("written: " + ", ".join(str(path) for path in written) + "".join(f"; {d}" for d in cleaned))


def _write(path: Path, data: dict[str, Any]) -> Path:
    # Outputs marked secret are already masked; redact() removes any password that is left.
    text = redact(json.dumps(data, indent=2, sort_keys=True, default=str))
    path.write_text(text + "\n")
    return path
