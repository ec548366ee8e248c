"""The one interface the runbook drives every store through.

A phase never reaches into a store: it asks each moved store, in turn or side by side,
to check its target, copy while the app is live, report its lag, stop its own writes (the
read-only freeze), copy what is left inside the freeze, verify, and let go (rollback).
A store implements what applies to it; the defaults do nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migration.preflight import PreflightReport
from migration.progress import ProgressSink
from migration.runbook.context import RunContext, Sources, Targets
from migration.runbook.follower import FollowerStatus
from migration.runbook.state import StoreState
from migration.verify import VerifyReport

__all__ = ["ProgressFor", "Store", "StoreVerify"]

#: A progress display for a unit ("bytes", "keys", "objects"); one per store running side by side.
ProgressFor = Callable[[str], ProgressSink]


@dataclass(frozen=True)
class StoreVerify:
    """One comparison a store made: what (``postgres``, ``s3:BUCKET``), its JSON report, its differences."""

    name: str
    report: dict[str, Any]
    differences: list[str]

    @classmethod
    def of(cls, name: str, report: VerifyReport) -> StoreVerify:
        return cls(name, report.to_json(), [f"{report.store} {d.kind} {d.name}" for d in report.differences])


class Store:
    """A data store the runbook moves. Subclasses set :attr:`name` and override what applies."""

    name: str = ""

    def moves(self, ctx: RunContext, sources: Sources) -> bool:
        """Whether this run moves the store."""
        raise NotImplementedError

    def state(self, ctx: RunContext) -> StoreState:
        return ctx.state.store(self.name)

    def preflight(self, ctx: RunContext, sources: Sources, targets: Targets) -> PreflightReport | None:
        """Checks of both sides before anything is copied (``None``: nothing to check)."""
        return None

    def check_freeze(self, ctx: RunContext, sources: Sources) -> None:
        """:raises FerryError: the configured freeze cannot stop this store's writes."""

    def copy_live(self, ctx: RunContext, sources: Sources, targets: Targets) -> str:
        """Copy while the app is live (and start following it, where the store can)."""
        return ""

    def live_status(self, ctx: RunContext) -> FollowerStatus | None:
        """The background copy's last word, where the store has one."""
        return None

    def catch_up(self, ctx: RunContext, sources: Sources, targets: Targets) -> str:
        """While live, before the freeze: let the background copy catch up, verify what can be verified
        while the app writes. By default, only its lag is reported."""
        status = self.live_status(ctx)
        if status is None:
            return ""
        return f"{self.name}: {status.queued} changes waiting, {status.seconds_behind:.1f} s behind"

    def freeze_writes(self, ctx: RunContext, sources: Sources) -> str:
        """Stop the app's writes to this source store, reads going on (the read-only freeze)."""
        return ""

    def writes_stopped(self, ctx: RunContext, sources: Sources) -> str:
        """The freeze has taken hold, whatever its mode: take what will show later that it held."""
        return ""

    def unfreeze_writes(self, ctx: RunContext, sources: Sources) -> str:
        """Let the app write to this source store again."""
        return ""

    def final_sync(self, ctx: RunContext, sources: Sources, targets: Targets, progress_for: ProgressFor) -> str:
        """Inside the freeze: bring the target to the source's final state."""
        raise NotImplementedError

    def verify(self, ctx: RunContext, sources: Sources, targets: Targets) -> list[StoreVerify]:
        raise NotImplementedError

    def prove_frozen(self, ctx: RunContext, sources: Sources, targets: Targets) -> list[StoreVerify]:
        """Inside the freeze, after the verify and again right before the switch: evidence that owes
        nothing to the copy's own machinery that the source took no write since its writes stopped."""
        return []

    def stop_following(self, ctx: RunContext) -> str:
        """Stop a background copy without draining it (rollback)."""
        return ""

    def forget_copy(self, ctx: RunContext) -> None:
        """The app wrote to the source again after a final sync: the next one copies anew."""

    def finish_target(self, ctx: RunContext, targets: Targets) -> str:
        """After the switch and the unfreeze, the app writing to the target: work that may run meanwhile."""
        return ""

    def cleanup(self, ctx: RunContext, sources: Sources) -> str:
        """After the run is recorded: remove what the copy left on either side (nothing yet)."""
        return ""
