"""What a seed is asked to do (:class:`Options`) and what it found (:class:`Outcome`)."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos.ferry_driver import ROOT


@dataclass
class Options:
    seconds: float = 30.0
    kills: int = 3
    writers: int = 4
    scale: float = 1.0
    jobs: int = 2
    batches: tuple[int, ...] = (5000, 5000, 1000, 200, 37)
    target_role: str = "superuser"  # or "owner": a role that cannot set session_replication_role
    without: tuple[str, ...] = ()  # FEATURES left out of the schema
    copy_kills: int = 0  # SIGKILLs of the copy before it follows (each resumed with --resume)
    catch_up_seconds: float = 120.0
    work: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "ferry-capture-chaos")
    ferry_root: Path = ROOT
    verbose: bool = True


@dataclass
class Outcome:
    seed: int
    identical: bool = False
    differences: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    kills: int = 0
    restarts_after_error: int = 0
    applied: int = 0
    drained: int = 0
    acked: int = 0
    refused: int = 0
    ambiguous: int = 0
    missing_acked: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # ferry's error lines
    problems: list[str] = field(default_factory=list)  # anything else that went wrong
    notes: list[str] = field(default_factory=list)  # worth knowing, not a failure
    leftovers: list[str] = field(default_factory=list)
    unexpected_writer_errors: list[str] = field(default_factory=list)
    ops: Counter[str] = field(default_factory=Counter)
    refused_by: Counter[str] = field(default_factory=Counter)
    straggler: str = ""

    @property
    def ok(self) -> bool:
        return (self.identical and not self.errors and not self.problems and not self.leftovers
                and not self.missing_acked and not self.unexpected_writer_errors)  # fmt: skip

    def verdict(self) -> str:
        if self.ok:
            return "identical"
        parts = []
        if not self.identical:
            tables = sorted({d.split(":")[0] for d in self.differences})
            shown = ", ".join(tables[:4]) + (f" and {len(tables) - 4} more" if len(tables) > 4 else "")
            parts.append("differ: " + shown if tables else "not compared")
        if self.missing_acked:
            parts.append(f"{self.missing_acked} acknowledged writes missing")
        if self.leftovers:
            parts.append(f"{len(self.leftovers)} catalog leftovers")
        if self.errors or self.problems:
            parts.append("ferry failed" if self.errors else "problems")
        return "; ".join(parts)
