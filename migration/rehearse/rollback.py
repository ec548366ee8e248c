"""``ferry rehearse --rollback``: after the switch the app writes to the new stores a while, then the run is
rolled back while it keeps writing, and every write it had acknowledged, on either side, must be on the
old stores at the end (and everything acknowledged before the rollback's freeze on the new ones)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from migration.rehearse.lost import Sides, acknowledged_before, lost_writes
from migration.rehearse.report import AppLog, longest
from migration.runbook import RunSettings, rollback
from migration.runbook.state import RunState
from migration.runbook.verify import BACK

__all__ = ["RollbackOutcome", "freeze_window", "roll_back_while_writing", "rollback_outcome"]


@dataclass
class RollbackOutcome:
    """The rollback as the app saw it; ``to_json()`` is the report's ``rollback`` section."""

    after_switch_seconds: float
    write_unavailable_seconds: float
    write_unavailable_by_store: dict[str, float]
    read_unavailable_seconds: float
    #: Acknowledged by the old stores before the switch, the new ones after it, the old ones after the rollback.
    acknowledged_by_side: dict[str, dict[str, int]]
    #: Acknowledged anywhere and missing from the old stores at the end (every store's).
    lost_writes_by_store: dict[str, int]
    #: Acknowledged before the rollback's freeze and missing from the new stores.
    lost_forward_by_store: dict[str, int]
    verified: bool
    verification: dict[str, Any] = field(default_factory=dict)
    freeze: dict[str, Any] = field(default_factory=dict)

    @property
    def lost_writes(self) -> int:
        return sum(self.lost_writes_by_store.values()) + sum(self.lost_forward_by_store.values())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["lost_writes"] = self.lost_writes
        data["write_unavailable_seconds"] = round(self.write_unavailable_seconds, 3)
        data["read_unavailable_seconds"] = round(self.read_unavailable_seconds, 3)
        data["write_unavailable_by_store"] = {k: round(v, 3) for k, v in self.write_unavailable_by_store.items()}
        return data


def roll_back_while_writing(
    settings: RunSettings,
    after_switch_seconds: float,
    wait_for_writes: Callable[[int], None],
    say: Callable[[str], None],
) -> float:
    """The app writes to the new stores *after_switch_seconds*, then ``ferry rollback`` runs while it goes on
    writing; returns when the rollback began (epoch seconds).

    :param wait_for_writes: returns once the app has had this many more web writes acknowledged."""
    say(f"the app writes to the new stores for {after_switch_seconds:g} s, then the run is rolled back")
    time.sleep(after_switch_seconds)
    began = time.time()
    rollback(settings, say=say)
    wait_for_writes(20)  # the app writes to its old stores again
    return began


def rollback_outcome(
    state: RunState,
    log: AppLog,
    began: float,
    old: Sides,
    new: Sides,
    s3_client: Any,
    switched_back: bool,
    after_switch_seconds: float,
) -> RollbackOutcome:
    """What the rollback cost the app and lost, from the app's log and the stores as they are now.

    :param switched_back: the app's config points at the old stores again."""
    acknowledged = log.acknowledged
    freeze_began = state.phases["back:freeze"].started_at if "back:freeze" in state.phases else began
    switched = state.phases["switch"]
    back_switch = state.phases.get("back:switch")
    moments = (switched.started_at + switched.seconds, back_switch.started_at if back_switch else began)
    forward = acknowledged_before(acknowledged, freeze_began)
    reports = {name: report for name, report in state.verify.items() if name.startswith(BACK)}
    windows = {store: [w for w in spans if w[1] >= began] for store, spans in log.write_windows.items()}
    merged = [w for w in log.windows if w[1] >= began]
    return RollbackOutcome(
        after_switch_seconds=after_switch_seconds,
        write_unavailable_seconds=longest(merged),
        write_unavailable_by_store={store: longest(spans) for store, spans in windows.items()},
        read_unavailable_seconds=longest([w for w in log.read_windows if w[1] >= began]),
        acknowledged_by_side={store: _by_side(acks, moments) for store, acks in acknowledged.items()},
        lost_writes_by_store=lost_writes(old, s3_client, acknowledged, last_upload=True),
        lost_forward_by_store=lost_writes(new, s3_client, forward, last_upload=False),
        verified=state.done("back:verify")
        and bool(reports)
        and all(bool(r.get("identical", not r.get("differences"))) for r in reports.values())
        and switched_back,
        verification={name: {k: v for k, v in r.items() if k != "differences"} for name, r in reports.items()},
        freeze=freeze_window(state, BACK),
    )


def _by_side(acks: dict[int, tuple[float, str]], moments: tuple[float, float]) -> dict[str, int]:
    switched, back = moments
    return {
        "old before the switch": sum(1 for at, _ in acks.values() if at < switched),
        "new": sum(1 for at, _ in acks.values() if switched <= at < back),
        "old after the rollback": sum(1 for at, _ in acks.values() if at >= back),
    }


_INSIDE = ("freeze", "final-sync", "verify", "switch", "unfreeze")


def freeze_window(state: RunState, prefix: str = "") -> dict[str, Any]:
    """The freeze's mode, its length (from the freeze's start to the unfreeze's end) and the seconds of each
    phase inside it; *prefix* ``back:`` for the rollback's. Empty when it did not run whole."""
    inside = {name: state.phases[prefix + name] for name in _INSIDE if prefix + name in state.phases}
    if "freeze" not in inside or "unfreeze" not in inside:
        return {}
    end = inside["unfreeze"].started_at + inside["unfreeze"].seconds
    return {
        "mode": state.freeze_mode,
        "seconds": round(end - inside["freeze"].started_at, 3),
        "phases": {prefix + name: record.seconds for name, record in inside.items()},
    }
