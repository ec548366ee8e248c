"""Phases ``alias`` and ``switch``, and the rollback: the app moved to the target and back.

With a stack, each step is a stack update setting ``ferry:cutover`` (``aliased``, ``switched``,
``rolled_back``: see ``stacks/cutover.py``). With targets given as URLs, the same sequence goes
straight through the platform.
"""

from __future__ import annotations

from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome, done
from migration.runbook.stores import moved_addons, moved_stores
from migration.runbook.verify import prove_frozen

__all__ = ["alias", "rollback_cutover", "switch"]


def alias(ctx: RunContext) -> PhaseOutcome:
    moves = moved_addons(ctx)
    if ctx.settings.uses_stack:
        ctx.stack_outputs(ctx.infra.set_cutover("aliased"))
    else:
        ctx.platform.alias(moves)
    return done(
        ", ".join(f"{move.addon} attached as {move.rollback_alias}, {move.attachment} detached" for move in moves)
    )


def switch(ctx: RunContext) -> PhaseOutcome:
    urls = {name: url for store, run in moved_stores(ctx) for name, url in store.switched_config(run).items()}
    already = not ctx.settings.uses_stack and all(ctx.platform.config_vars().get(n) == u for n, u in urls.items())
    if not already:
        # The last word before the app moves: the witnesses again, as late as they can be asked.
        prove_frozen(ctx)
    if ctx.settings.uses_stack:
        # synchronous_commit off and no autovacuum suit the copy, not the app: the same update ends them.
        ctx.stack_outputs(ctx.infra.set_cutover("switched", end_bulk_load=ctx.config.migration.loading))
    else:
        if already:
            # Set already by a run that crashed before recording it: setting them again restarts every dyno.
            return done(f"{', '.join(sorted(urls))} already point at the target")
        ctx.platform.switch(urls)
    return done(f"{', '.join(sorted(urls))} point at the target")


def rollback_cutover(ctx: RunContext) -> str:
    moves = moved_addons(ctx)
    if ctx.settings.uses_stack:
        ctx.stack_outputs(ctx.infra.set_cutover("rolled_back"))
    else:
        ctx.platform.rollback(moves)
    return ", ".join(f"{move.attachment} is {move.addon} again" for move in moves)
