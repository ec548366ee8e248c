"""Phases ``record`` (and ``ferry record``) and ``cleanup``.

``record`` writes endpoints, timings and a stack export for the run's records, and changes nothing
anywhere: it may be run at any moment of a migration. ``cleanup`` is the run's last step, after the
switch and the unfreeze: what the copy left on either side comes off (change capture on the
source, the follow's record on the target), and foreign keys put back ``NOT VALID`` are validated.
It refuses while the run is not finished, since capture is what the rest of the run stands on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from migration.errors import RunbookError
from migration.redact import redact
from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome, done
from migration.runbook.stores import moved_stores

__all__ = ["cleanup", "record"]


def record(ctx: RunContext) -> PhaseOutcome:
    targets: dict[str, Any] = {"postgres": None, "redis": None, "buckets": {}}
    for store, run in moved_stores(ctx):
        targets.update(store.recorded(run))
    data: dict[str, Any] = {
        "stack": ctx.settings.stack,
        "app": ctx.config.heroku.app,
        "targets": targets,
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
    return done("written: " + ", ".join(str(path) for path in written))


def cleanup(ctx: RunContext) -> PhaseOutcome:
    """:raises RunbookError: the app has not been switched and unfrozen yet."""
    unfinished = [name for name in ("switch", "unfreeze") if not ctx.state.done(name)]
    if unfinished:
        raise RunbookError(
            f"cleanup comes after {' and '.join(unfinished)}: the run is not finished, and what cleanup removes "
            "(change capture on the source) is what the rest of it stands on"
        )
    stores = moved_stores(ctx)
    cleaned = [d for d in (store.finish_target(run) for store, run in stores) if d]
    cleaned += [d for d in (store.cleanup(run) for store, run in stores) if d]
    return done("; ".join(cleaned) or "nothing to remove")


def _write(path: Path, data: dict[str, Any]) -> Path:
    # Outputs marked secret are already masked; redact() removes any password that is left.
    text = redact(json.dumps(data, indent=2, sort_keys=True, default=str))
    path.write_text(text + "\n")
    return path
