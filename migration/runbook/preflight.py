"""Phase ``preflight``: the source answers, the platform answers, the targets can take the copy."""

from __future__ import annotations

from migration.errors import PreconditionError
from migration.preflight import SAME_STORE_CHECK, PreflightReport
from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome, done
from migration.runbook.stores import moved_stores

__all__ = ["check_targets", "preflight"]


def preflight(ctx: RunContext) -> PhaseOutcome:
    formation = ctx.platform.formation()
    checked = [f"{ctx.platform.description}: {sum(formation.values())} dynos", _reachable(ctx)]
    for store, run in moved_stores(ctx):
        # Each store's old side, where the app has it, is found now: a missing URL stops the run here.
        _ = run.from_side
        # The freeze must be able to stop every moved store's writes: found out now, not inside it.
        store.check_freeze(run)
    if ctx.settings.uses_stack and not ctx.state.done("provision"):
        return done("; ".join([*checked, "target checks run after provision, before the copy"]))
    # A store to be copied anew (a move started again after its rollback) holds an earlier attempt's copy.
    copying_began = (
        "copy" in ctx.state.phases
        or "final-sync" in ctx.state.phases
        or any(run.state.recopy for _store, run in moved_stores(ctx))
    )
    return done("; ".join([*checked, check_targets(ctx, copying_began=copying_began)]))


def _reachable(ctx: RunContext) -> str:
    """The app can reach its new stores from where its host says it runs (the stack file's ``reach``).

    :raises PreconditionError: it could not, after the switch."""
    reach, config = ctx.config.reach, ctx.config
    network = ctx.platform.network()
    space = config.network.peering.space if config.network.peering else None
    where = f"app {config.heroku.app} on stack {ctx.settings.stack}"
    runs = "in the Common Runtime" if network == "common-runtime" else f"in {network.removeprefix('private-space:')}"
    if network == "unknown":
        return f"reach: {reach.app} (as the stack file says)"
    if reach.app == "private-space" and network != f"private-space:{space}":
        raise PreconditionError(
            f"the new stores would be out of reach of {where}: reach.app private-space peers Private Space "
            f"{space}, but the app runs {runs}; fix ferry:reach (or network.peering) before anything is built",
            side="target",
        )
    if reach.app == "vpc":
        raise PreconditionError(
            f"the new stores would be out of reach of {where}: reach.app vpc says it runs in AWS, but it runs "
            f"{runs} on Heroku; fix ferry:reach before anything is built",
            side="target",
        )
    return f"reach: {reach.app} ({runs})"


def check_targets(ctx: RunContext, *, copying_began: bool) -> str:
    """Source and target checks of every moved store; a failed check stops the run before the freeze.

    Run by ``preflight`` when the target exists, else by ``copy`` right after ``provision``.

    :param copying_began: an earlier attempt copied already: the target is meant to hold data
        then, so failed checks are reported but do not stop the run (except a target that is
        the source).
    """
    reports: list[tuple[str, PreflightReport]] = []
    for store, run in moved_stores(ctx):
        report = store.preflight(run)
        if report is not None:
            reports.append((store.name, report))
    checked: list[str] = []
    for name, report in reports:
        failed = [check for check in report.checks if check.status == "fail"]
        # Even after copying began: writing into the source would destroy it.
        never_ignored = [check for check in failed if check.name == SAME_STORE_CHECK]
        if never_ignored or (failed and not copying_began):
            first = (never_ignored or failed)[0]
            raise PreconditionError(f"{name} preflight: {first.name}: {first.detail}")
        checked.append(f"{name}: {len(report.checks)} checks")
    ctx.state.targets_checked = True
    ctx.save()
    return "; ".join(checked) or "no store to check"
