"""The run's checkpoint: which phases are done, how long they took, what to restore.

Kept as JSON in the run's state directory (``.ferry/<stack>/state.json``), replaced
atomically after every change. It never holds a secret: URLs are read from the platform
or the stack each time they are needed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from migration.errors import ResumeError
from migration.files import replace_file

__all__ = ["FollowerState", "PhaseRecord", "RunState", "StoreState"]

PhaseStatus = Literal["running", "done", "failed", "skipped"]


@dataclass
class PhaseRecord:
    status: PhaseStatus
    started_at: float
    seconds: float = 0.0
    detail: str = ""
    #: Wall-clock start of each attempt: a phase resumed after a crash has several.
    attempts: int = 1


@dataclass
class FollowerState:
    """A background copy that outlives the phase that started it (the live Redis copy)."""

    pid: int | None = None


@dataclass
class StoreState:
    """What one store's copy must remember between runs.

    :param copy_started: a copy into the target began (a new attempt resumes it).
    :param recopy: the target holds a finished copy the source has moved on from (a failed
        verify unfroze the app): the next final sync copies again from scratch.
    :param follower: its background copy, if it has one.
    """

    copy_started: bool = False
    recopy: bool = False
    follower: FollowerState = field(default_factory=FollowerState)
    #: Where the final sync must reach (change capture: the fence's marker entry).
    marker: int | None = None
    #: The live verify's position in the target's record of rewritten rows (``None``: none ran);
    #: the verify inside the freeze compares what was rewritten after it.
    verified_through: int | None = None
    #: Key ranges that still differed while live, as ``[table, label, condition]``.
    deferred_ranges: list[list[str]] = field(default_factory=list)
    #: What the background copy said when the freeze began: changes waiting, seconds behind.
    lag_at_freeze: dict[str, float] = field(default_factory=dict)
    #: Changes the final sync drained inside the freeze.
    drained: int | None = None
    #: What the source looked like as its writes stopped (change capture's witness, as JSON).
    witness: dict[str, Any] | None = None


@dataclass
class RunState:
    """Everything ``ferry run`` must remember between runs of the same stack."""

    stack: str
    phases: dict[str, PhaseRecord] = field(default_factory=dict)
    #: Process counts before the freeze scaled them to 0.
    formation: dict[str, int] = field(default_factory=dict)
    freeze_mode: str | None = None
    frozen: bool = False
    rolled_back: bool = False
    #: The targets' preflight checks ran (before the copy, when the stack built them).
    targets_checked: bool = False
    #: Each store's section, by store name.
    stores: dict[str, StoreState] = field(default_factory=dict)
    #: The verify phase's reports, by what was compared (``postgres``, ``redis``, ``s3:BUCKET``).
    verify: dict[str, Any] = field(default_factory=dict)

    def store(self, name: str) -> StoreState:
        return self.stores.setdefault(name, StoreState())

    @classmethod
    def load(cls, path: Path, stack: str) -> RunState:
        if not path.exists():
            return cls(stack=stack)
        try:
            data = _upgrade(json.loads(path.read_text()))
            records = {name: PhaseRecord(**record) for name, record in data.pop("phases", {}).items()}
            # The file is written with sorted keys: the run's order is the order phases started in.
            phases = dict(sorted(records.items(), key=lambda item: item[1].started_at))
            stores = {
                name: StoreState(
                    copy_started=bool(section.get("copy_started", False)),
                    recopy=bool(section.get("recopy", False)),
                    follower=FollowerState(**section.get("follower", {})),
                    marker=section.get("marker"),
                    verified_through=section.get("verified_through"),
                    deferred_ranges=[list(r) for r in section.get("deferred_ranges", [])],
                    lag_at_freeze=dict(section.get("lag_at_freeze", {})),
                    drained=section.get("drained"),
                    witness=section.get("witness"),
                )
                for name, section in data.pop("stores", {}).items()
            }
            state = cls(phases=phases, stores=stores, **data)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ResumeError(
                f"{path}: not a ferry run state file ({exc}); move it away to start the run anew"
            ) from exc
        if state.stack != stack:
            raise ResumeError(f"{path} belongs to stack {state.stack!r}, not {stack!r}")
        return state

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(path, json.dumps(asdict(self), indent=2, sort_keys=True), durable=True)

    def done(self, phase: str) -> bool:
        record = self.phases.get(phase)
        return record is not None and record.status in ("done", "skipped")

    def start(self, phase: str) -> None:
        previous = self.phases.get(phase)
        attempts = previous.attempts + 1 if previous else 1
        self.phases[phase] = PhaseRecord(status="running", started_at=time.time(), attempts=attempts)

    def finish(self, phase: str, status: PhaseStatus, detail: str, seconds: float) -> None:
        record = self.phases[phase]
        record.status, record.detail, record.seconds = status, detail, round(seconds, 3)


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A state file written before stores had sections of their own, in today's shape."""
    stores: dict[str, Any] = data.setdefault("stores", {})
    if "postgres_copy_started" in data or "postgres_recopy" in data:
        stores["postgres"] = {
            "copy_started": data.pop("postgres_copy_started", False),
            "recopy": data.pop("postgres_recopy", False),
        }
    if "redis_live_pid" in data:
        stores["redis"] = {"follower": {"pid": data.pop("redis_live_pid")}}
    facts = data.pop("facts", None) or {}
    data.setdefault("targets_checked", bool(facts.get("targets_checked", False)))
    data.setdefault("verify", facts.get("verify", {}))
    return data
