"""Phase ``settle``: after the switch, the unfreeze and the smoke checks, the database as it stays — one stack
update.

The instance loaded on ``database.loadInstanceClass`` goes back to ``instanceClass`` (a modify applied at once:
with Multi-AZ a failover of seconds, timed as this phase), and ``database.readReplicas`` read replicas are
created: after the switch, so the load never ships to them, and outside the freeze, since creating one takes
minutes. With ``database.replicaConfigVar`` the same update gives the app the first replica's read-only URL, a
switched variable like the others (kept for the rollback, which unsets it).

The update sets ``ferry:database.settled: true`` in the stack file and runs ``pulumi up``; a repeat after a
crash does the same again, which changes nothing once one went through. It runs where Pulumi is: on the caller
under ``--runner`` (a control phase, as the smoke checks are). After them: a replica's minutes of creation hold
up neither the buckets' catch-up, nor the follow back, nor a rollback the smoke checks call for.
"""

from __future__ import annotations

from migration.errors import RunbookError
from migration.runbook.context import RunContext
from migration.runbook.outcome import PhaseOutcome, done, skipped
from migration.stackconfig import DatabaseConfig

__all__ = ["settle", "settling"]


def settling(database: DatabaseConfig) -> list[str]:
    """What settling changes for *database*, one phrase each (nothing: there is nothing to settle)."""
    changes = []
    load = database.load_instance_class
    if load and load != database.instance_class:
        failover = " (Multi-AZ: a failover of seconds)" if database.multi_az else ""
        changes.append(f"instance class {load} → {database.instance_class}, applied at once{failover}")
    replicas = database.read_replicas
    if replicas:
        changes.append(f"{replicas} read replica{'s' * (replicas != 1)} ({database.replica_class})")
        if database.replica_config_var:
            changes.append(f"{database.replica_config_var} set to the first replica's read-only URL")
    return changes


def settle(ctx: RunContext) -> PhaseOutcome:
    """:raises RunbookError: the app has not been switched and unfrozen yet (replicas made now would replicate the
    load, and a smaller class would slow the copy)."""
    if not ctx.settings.uses_stack:
        return skipped("nothing to settle: the target was given as URLs")
    changes = settling(ctx.config.database)
    if not changes:
        return skipped("nothing to settle: no database.loadInstanceClass besides instanceClass, no readReplicas")
    if not ctx.settings.last_move:
        # The instance is the whole stack's: moves after this one still load onto it.
        return skipped(f"the instance settles after the stack's last move ({', '.join(changes)})")
    unfinished = [name for name in ("switch", "unfreeze") if not ctx.state.done(name)]
    if unfinished:
        raise RunbookError(f"settle comes after {' and '.join(unfinished)}: the instance is still the load's")
    outputs = ctx.stack_outputs(ctx.infra.settle())
    endpoints = [str(endpoint) for endpoint in outputs.values.get("databaseReplicaEndpoints") or []]
    return done("; ".join(changes + ([f"replicas at {', '.join(endpoints)}"] if endpoints else [])))
