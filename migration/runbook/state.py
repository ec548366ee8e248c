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

__all__ = ["PhaseRecord", "RunState"]

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
class RunState:
    """Everything ``ferry run`` must remember between runs of the same stack."""

    stack: str
    phases: dict[str, PhaseRecord] = field(default_factory=dict)
    #: Process counts before the freeze scaled them to 0.
    formation: dict[str, int] = field(default_factory=dict)
    freeze_mode: str | None = None
    frozen: bool = False
    rolled_back: bool = False
    postgres_copy_started: bool = False
    #: The target holds a finished copy the source has moved on from: copy again with --clean.
    postgres_recopy: bool = False
    redis_live_pid: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, stack: str) -> RunState:
        if not path.exists():
            return cls(stack=stack)
        try:
            data = json.loads(path.read_text())
            records = {name: PhaseRecord(**record) for name, record in data.pop("phases", {}).items()}
            # The file is written with sorted keys: the run's order is the order phases started in.
            phases = dict(sorted(records.items(), key=lambda item: item[1].started_at))
            state = cls(phases=phases, **data)
        except (ValueError, TypeError) as exc:
            raise ResumeError(f"{path}: not a ferry run state file ({exc})") from exc
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
