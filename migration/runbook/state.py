"""The run's checkpoint: which phases are done, how long they took, what to restore.

Kept as JSON in the run's state directory (``.ferry/<stack>/state.json``), replaced
atomically after every change. It never holds a secret: URLs are read from the platform
or the stack each time they are needed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_type_hints

from pydantic import TypeAdapter, ValidationError

from migration.errors import ResumeError
from migration.files import replace_file

__all__ = ["FollowerState", "PhaseRecord", "RunState", "StoreState"]

PhaseStatus = Literal["running", "done", "failed", "skipped"]
Section = TypeVar("Section", bound="StoreState")


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

    def __post_init__(self) -> None:
        if self.pid is not None and not 1 < self.pid < 1 << 22:
            raise ValueError(f"pid: {self.pid} is no worker's")


@dataclass
class StoreState:
    """What every store's copy must remember between runs; a store extends it with its own fields
    (PostgreSQL's: :class:`~migration.runbook.stores.postgres.PostgresState`).

    :param copy_started: a copy into the target began (a new attempt resumes it).
    :param recopy: the target holds a finished copy the source has moved on from (a failed
        verify unfroze the app): the next final sync copies again from scratch.
    :param follower: its background copy, if it has one.
    :param lag_at_freeze: what the background copy said when the freeze began (changes waiting,
        seconds behind, applied so far).
    :param strategy: how its data moves, chosen when the copy began (a run keeps it to the end).
    """

    copy_started: bool = False
    recopy: bool = False
    follower: FollowerState = field(default_factory=FollowerState)
    lag_at_freeze: dict[str, float] = field(default_factory=dict)
    #: How its data moves (its strategy's name), as chosen when the copy began: kept to the end of the run.
    strategy: str | None = None
    #: The target's count of writes as the switch pointed the app at it (where the store keeps one).
    writes_at_switch: int | None = None
    #: Its follow back (the target's writes into the old side, from the switch until ``finish``).
    back_follower: FollowerState = field(default_factory=FollowerState)
    #: When the follow back began (epoch seconds; ``None``: it did not).
    back_since: float | None = None

    def __post_init__(self) -> None:
        if self.writes_at_switch is not None and self.writes_at_switch < 0:
            raise ValueError(f"writes_at_switch: {self.writes_at_switch} is no count of writes")
        if self.back_since is not None and not 0 < self.back_since < 1e11:
            raise ValueError(f"back_since: {self.back_since} is no moment")

    @classmethod
    def from_json(cls: type[Section], data: dict[str, Any]) -> Section:
        """The section *data* holds, every field of its type (fields this store does not know are dropped,
        missing ones default). :raises ValueError: a field of the wrong type, naming it."""
        return _strictly(cls, data, "")


def _as_json(section: StoreState | dict[str, Any] | None) -> dict[str, Any]:
    return asdict(section) if isinstance(section, StoreState) else dict(section or {})


_T = TypeVar("_T")


def _strictly(kind: type[_T], data: Any, where: str) -> _T:
    """*data* as the dataclass *kind*, each field strictly of its type (``"12"`` is no pid, ``"yes"`` no bool)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'the section'}: not an object")
    hints, values = get_type_hints(kind), {}
    for item in fields(kind):  # type: ignore[arg-type]
        if item.name not in data:
            continue
        hint, name = hints[item.name], f"{where}{item.name}"
        if isinstance(hint, type) and is_dataclass(hint):
            values[item.name] = _strictly(hint, data[item.name], f"{name}.")
            continue
        try:
            values[item.name] = TypeAdapter(hint).validate_python(data[item.name], strict=True)
        except ValidationError as exc:
            raise ValueError(f"{name}: {str(exc.errors()[0]['msg']).lower()}") from None
    try:
        return kind(**values)
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None


@dataclass
class RunState:
    """Everything ``ferry run`` must remember between runs of the same stack."""

    stack: str
    phases: dict[str, PhaseRecord] = field(default_factory=dict)
    #: Process counts before the freeze scaled them to 0.
    formation: dict[str, int] = field(default_factory=dict)
    freeze_mode: str | None = None
    #: Releases (every dyno restarted) the cutover made while the app was frozen.
    releases_in_freeze: int = 0
    frozen: bool = False
    rolled_back: bool = False
    #: The targets' preflight checks ran (before the copy, when the stack built them).
    targets_checked: bool = False
    #: Each store's section, by store name: as read from the file until its store asks for it typed.
    stores: dict[str, StoreState | dict[str, Any]] = field(default_factory=dict)
    #: The verify phase's reports, by what was compared (``postgres``, ``redis``, ``s3:BUCKET``).
    verify: dict[str, Any] = field(default_factory=dict)
    #: A rollback after the switch is under way: the phases move every store from the target back.
    back: bool = False
    #: ``ferry finish`` ran: the follow back stopped, capture gone from both sides; no rollback any more.
    finished: bool = False
    #: A ``--runner`` task waits, idle, for the caller to run this phase (``switch``); the caller clears it.
    awaiting: str | None = None
    #: What a rollback's work on the stores did (a ``--runner`` task does it, the caller records it).
    released: str = ""
    #: An ECS task keeps the follow back's workers (they would end with any task that ends): it runs until asked.
    keeper: bool = False

    #: When the freeze began whose switch a ``--runner`` task has witnessed (its stores' work done).
    witnessed: float | None = None

    def section(self, name: str, kind: type[Section]) -> Section:
        """Store *name*'s section, as its store's own type (read from the file the first time)."""
        current = self.stores.get(name)
        if not isinstance(current, kind):
            try:
                current = kind.from_json(_as_json(current))
            except (ValueError, TypeError, AttributeError) as exc:
                raise ResumeError(
                    f"the run's state file: its {name} section is not one ferry wrote ({exc}); "
                    "move the file away to start the run anew"
                ) from exc
            self.stores[name] = current
        return current

    def sections(self) -> dict[str, dict[str, Any]]:
        """Every store's section as JSON (as the file holds it), by store name."""
        return {name: _as_json(section) for name, section in self.stores.items()}

    @classmethod
    def load(cls, path: Path, stack: str) -> RunState:
        if not path.exists():
            return cls(stack=stack)
        try:
            data = _upgrade(json.loads(path.read_text()))
            records = {name: PhaseRecord(**record) for name, record in data.pop("phases", {}).items()}
            # The file is written with sorted keys: the run's order is the order phases started in.
            phases = dict(sorted(records.items(), key=lambda item: item[1].started_at))
            stores: dict[str, StoreState | dict[str, Any]] = {
                name: dict(section) for name, section in data.pop("stores", {}).items()
            }
            state = cls(phases=phases, stores=stores, **data)
            for name in ("frozen", "rolled_back", "targets_checked", "back", "finished"):
                if not isinstance(getattr(state, name), bool):
                    raise ValueError(f"{name}: {getattr(state, name)!r} is not true or false")
            if state.awaiting is not None and not isinstance(state.awaiting, str):
                raise ValueError(f"awaiting: {state.awaiting!r} is not a phase")
            if not isinstance(state.keeper, bool):
                raise ValueError(f"keeper: {state.keeper!r} is not true or false")
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
