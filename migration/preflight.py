"""Preflight reports shared by every store: named checks, each ok, warn or fail."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["SAME_STORE_CHECK", "Check", "PreflightReport", "Status"]

Status = Literal["ok", "warn", "fail"]

#: The check every store makes that a target is not its source; ``ferry run`` never lets it fail.
SAME_STORE_CHECK = "target is not the source"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


@dataclass
class PreflightReport:
    """Every check and the copy-time estimate; ``ok`` decides the exit code."""

    checks: list[Check] = field(default_factory=list)
    source_bytes: int = 0
    tables: int = 0
    estimated_seconds: float = 0.0
    #: What the freeze itself must copy (PostgreSQL with capture: the tables it cannot follow).
    estimated_freeze_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.status != "fail" for c in self.checks)

    def add(self, name: str, status: Status, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source_bytes": self.source_bytes,
            "tables": self.tables,
            "estimated_seconds": round(self.estimated_seconds, 3),
            "estimated_freeze_seconds": round(self.estimated_freeze_seconds, 3),
            "checks": [asdict(c) for c in self.checks],
        }
