"""One verify report shape for every store.

Every store's verify says the same things in the same JSON keys: which store, whether the
two sides are identical, what was checked (counts named by the store: tables, rows, keys,
objects…), the differences (each a kind, the thing that differs, and what each side has),
how many there are in all (the list stops at :data:`MAX_LISTED`), notes that are not
differences, and the time it took. Store-specific extras go under ``details``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["MAX_LISTED", "Difference", "VerifyReport"]

#: Differences kept in a report; the total is counted beyond it.
MAX_LISTED = 1000


@dataclass(frozen=True)
class Difference:
    """One thing that is not the same on both sides.

    :param kind: what differs (``row count``, ``checksum``, ``ttl``, ``missing on target``, …).
    :param name: the object that differs (a table and range, ``db0:key``, an object key).
    """

    kind: str
    name: str
    source: str
    target: str


@dataclass
class VerifyReport:
    """A store's verification; ``identical`` decides the exit code (0, else 1)."""

    store: str
    differences: list[Difference] = field(default_factory=list)
    differences_total: int = 0
    #: What differs without being a difference (an extension at another version on the target).
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, difference: Difference) -> None:
        self.differences_total += 1
        if len(self.differences) < MAX_LISTED:
            self.differences.append(difference)

    def add_all(self, differences: list[Difference]) -> None:
        for difference in differences:
            self.add(difference)

    @property
    def identical(self) -> bool:
        return self.differences_total == 0

    def checked(self) -> dict[str, int]:
        """How much was compared, by what the store counts."""
        return {}

    def details(self) -> dict[str, Any]:
        """Store-specific extras for the JSON report."""
        return {}

    def summary(self) -> str:
        """One line for people: what was checked, in how long."""
        counts = ", ".join(f"{n} {what}" for what, n in self.checked().items())
        return f"{counts or 'nothing'} checked in {self.seconds:.1f} s"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "store": self.store,
            "identical": self.identical,
            "checked": self.checked(),
            "differences": [asdict(d) for d in self.differences],
            "differences_total": self.differences_total,
            "notes": self.notes,
            "seconds": round(self.seconds, 3),
        }
        details = self.details()
        if details:
            data["details"] = details
        return data
