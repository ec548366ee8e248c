"""What a phase returns: done or skipped, with one line saying what happened. A failure raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["PhaseOutcome", "done", "skipped"]


@dataclass(frozen=True)
class PhaseOutcome:
    status: Literal["done", "skipped"]
    detail: str


def done(detail: str) -> PhaseOutcome:
    return PhaseOutcome("done", detail)


def skipped(detail: str) -> PhaseOutcome:
    return PhaseOutcome("skipped", detail)
