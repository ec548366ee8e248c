"""Shared by the benchmarks: the machine, timing, medians and the result table."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass, field


def machine() -> str:
    cpu = "unknown cpu"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((ln.split(":", 1)[1].strip() for ln in info if ln.startswith("model name")), cpu)
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3
    return f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB, {platform.system()} {platform.release()}"


@dataclass
class Timings:
    """Seconds per tool over rounds, with medians and ratios against one reference tool."""

    reference: str
    runs: dict[str, list[float]] = field(default_factory=dict)

    def add(self, tool: str, seconds: float) -> None:
        self.runs.setdefault(tool, []).append(seconds)

    def median(self, tool: str) -> float:
        return statistics.median(self.runs[tool])

    def table(self) -> str:
        ref = self.median(self.reference)
        lines = [f"{'tool':<34} {'median s':>9} {'runs':>24} {'ferry / tool':>13}"]
        for tool in self.runs:
            runs = ", ".join(f"{s:.1f}" for s in self.runs[tool])
            lines.append(f"{tool:<34} {self.median(tool):>9.1f} {runs:>24} {ref / self.median(tool):>13.2f}")
        return "\n".join(lines)


def timed(cmd: list[str] | str, env: dict[str, str] | None = None, shell: bool = False) -> float:
    """Run *cmd*; raise with its stderr tail when it fails; return wall seconds."""
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, shell=shell, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd if isinstance(cmd, str) else ' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    return seconds
