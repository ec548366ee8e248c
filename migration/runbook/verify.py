"""Phase ``verify``: every moved store compared with its source, inside the freeze; and the proof,
asked again right before the switch, that no write reached the source since its writes stopped."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from migration.errors import DifferencesFoundError
from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome, done
from migration.runbook.parallel import side_by_side
from migration.runbook.stores import StoreVerify, moved_stores

__all__ = ["BACK", "prove_frozen", "verify"]

#: What a rollback's reports are named by in the run's state (``back:postgres``): the forward ones stay.
BACK = "back:"


def verify(ctx: RunContext) -> PhaseOutcome:
    tasks: dict[str, Callable[[], list[StoreVerify]]] = {
        store.name: partial(store.verify, run) for store, run in moved_stores(ctx)
    }
    checked = [item for items in side_by_side(tasks).values() for item in items]
    if ctx.state.back:  # the forward run's reports stay: the rollback's are told apart
        ctx.state.verify = {k: v for k, v in ctx.state.verify.items() if not k.startswith(BACK)}
        ctx.state.verify |= {f"{BACK}{item.name}": item.report for item in checked}
    else:
        ctx.state.verify = {item.name: item.report for item in checked}
    ctx.save()
    differences = [line for item in checked for line in item.differences]
    if differences:
        raise DifferencesFoundError(
            f"verify found {len(differences)} differences (first: {differences[0]}); nothing was switched"
        )
    return done("identical: " + ", ".join(item.name for item in checked) if checked else "nothing to verify")


def prove_frozen(ctx: RunContext) -> str:
    """Each store's witness, checked once more (the switch asks this first).

    :raises DifferencesFoundError: a store's source took a write its copy cannot account for.
    """
    checked = [item for store, run in moved_stores(ctx) for item in store.prove_frozen(run)]
    for item in checked:
        ctx.state.verify[f"{BACK if ctx.state.back else ''}{item.name} before the switch"] = item.report
    ctx.save()
    differences = [line for item in checked for line in item.differences]
    if differences:
        raise DifferencesFoundError(
            f"the source changed during the freeze where its copy cannot see ({len(differences)}; first: "
            f"{differences[0]}); nothing was switched"
        )
    return ", ".join(item.name for item in checked)
