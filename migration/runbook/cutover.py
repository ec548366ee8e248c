"""Phases ``alias`` and ``switch``, and the rollback: the app moved to the target and back.

``alias`` runs while the app is live, before the freeze: the old add-ons attached under their rollback
aliases, one release the app takes while it still writes. ``switch`` runs inside the freeze: each moved
add-on's main attachment removed and, right after, every switched variable set (``DATABASE_URL``,
``REDIS_URL``, the buckets' variables) in one release; between the two the app has no ``DATABASE_URL``, so
nothing runs between them. The releases made inside the freeze are counted in the run's state.

With a stack, each step is a stack update setting ``ferry:cutover`` (``aliased``, ``switched``,
``rolled_back``: see ``stacks/cutover.py``). With targets given as URLs, the same sequence goes
straight through the platform.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

from migration.platform.rollbackvars import restored_vars
from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome, done
from migration.runbook.parallel import side_by_side
from migration.runbook.stores import moved_addons, moved_stores
from migration.runbook.verify import prove_frozen

__all__ = ["alias", "rollback_cutover", "switch", "witness_switch"]


def alias(ctx: RunContext) -> PhaseOutcome:
    moves = moved_addons(ctx)
    if ctx.settings.uses_stack:
        ctx.stack_outputs(ctx.infra.set_cutover("aliased", key=ctx.config.cutover_key()))
        releases = len(moves)
    else:
        releases = ctx.platform.alias(moves)
    # The app restarts on the release: the freeze waits until it runs again, so the two windows stay apart.
    waited = ctx.platform.wait_for_release(ctx.config.migration.drain_seconds) if releases else "no release"
    return done(
        ", ".join(f"{move.addon} attached as {move.rollback_alias}" for move in moves)
        + f" while live ({releases} release{'s' * (releases != 1)}; {waited})"
    )


def switch(ctx: RunContext) -> PhaseOutcome:
    moves = moved_addons(ctx)
    urls = {name: url for store, run in moved_stores(ctx) for name, url in store.switched_config(run).items()}
    current = ctx.platform.config_vars()
    already = all(current.get(name) == value for name, value in urls.items())
    if already and (ctx.state.releases_in_freeze or not ctx.settings.uses_stack):
        # Set already by a run that crashed before recording it: setting them again restarts every dyno.
        return done(f"{', '.join(sorted(urls))} already point at the target")
    if not (ctx.settings.runner and ctx.state.witnessed == _this_freeze(ctx)):
        witness_switch(ctx)
    if ctx.settings.uses_stack:
        # synchronous_commit off and no autovacuum suit the copy, not the app: the same update ends them.
        ctx.stack_outputs(
            ctx.infra.set_cutover(
                "switched",
                end_bulk_load=ctx.config.migration.loading and ctx.settings.last_move,
                key=ctx.config.cutover_key(),
            )
        )
        releases = len(moves) + 1
    else:
        # This run, by when its freeze began: a keeper of the old values an earlier run left is not this one's.
        run = f"{ctx.settings.stack}@{ctx.state.phases['freeze'].started_at:.6f}"
        releases = ctx.platform.switch(urls, moves, run)
    ctx.state.releases_in_freeze += releases
    ctx.save()
    detached = ", ".join(move.attachment for move in moves)
    return done(f"{detached} detached, then {', '.join(sorted(urls))} set: {releases} releases in the freeze")


def witness_switch(ctx: RunContext) -> str:
    """The switch's work on the stores, right before the app is moved: what the targets took so far, the
    witnesses proved once more, the follow back begun. A ``--runner`` task does it as its last step (the
    caller cannot reach the stores), and notes it in the state for this freeze."""
    stores = moved_stores(ctx)
    with ThreadPoolExecutor(len(stores) or 1, thread_name_prefix="ferry-count") as pool:
        # What the targets took so far (nothing writes to them since the drain): a rollback later says how
        # much the app wrote to them since. Read beside the proof, which is the window's to wait for.
        counted = [(moved, pool.submit(store.target_writes, moved)) for store, moved in stores]
        # The last word before the app moves: the witnesses again, as late as they can be asked.
        prove_frozen(ctx)
    for moved, writes in counted:
        moved.state.writes_at_switch = writes.result()
    ctx.save()
    if ctx.config.migration.follows_back:
        # The app may write to the targets from the next release on: the follow back must see every write.
        began = side_by_side({store.name: partial(store.begin_back, moved) for store, moved in stores})
        ctx.say("; ".join(d for d in began.values() if d))
    ctx.state.witnessed = _this_freeze(ctx)
    ctx.save()
    return "the witnesses proved again"


def _this_freeze(ctx: RunContext) -> float:
    """When the freeze the app is in began (the rollback's own, moving back)."""
    return ctx.state.phases["back:freeze" if ctx.state.back else "freeze"].started_at


def rollback_cutover(ctx: RunContext) -> str:
    moves = moved_addons(ctx)
    if ctx.settings.uses_stack:
        config = ctx.platform.config_vars()
        restored_vars(config)  # a keeper ferry cannot read stops the rollback here, before anything changes
        detached = any(config.get(move.config_var) != config.get(f"{move.rollback_alias}_URL") for move in moves)
        # A switch that failed before its detach left every add-on attached: back to the alias alone (rolled_back
        # would attach them again, which Heroku refuses while they are).
        ctx.stack_outputs(ctx.infra.set_cutover("rolled_back" if detached else "aliased", key=ctx.config.cutover_key()))
    else:
        ctx.platform.rollback(moves)
    return ", ".join(f"{move.attachment} is {move.addon} again" for move in moves)
