"""The rehearsal's report: phases, the app's write gap, lost writes; as JSON, Markdown and an SVG timeline."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["AppLog", "Rehearsal", "read_app_log", "write_reports"]


@dataclass
class AppLog:
    """What the app saw: every acknowledged write, and every moment it could not write."""

    acknowledged: dict[int, str] = field(default_factory=dict)  # write id → kind
    ok_times: list[float] = field(default_factory=list)  # web writes
    unavailable: list[tuple[float, float]] = field(default_factory=list)  # merged windows
    failed: int = 0
    started: float = 0.0

    @property
    def longest_unavailable(self) -> float:
        return max((end - start for start, end in self.unavailable), default=0.0)


def read_app_log(path: Path) -> AppLog:
    """Parse the app's log; a window runs from the last good web write before a refusal to the next good one."""
    log = AppLog()
    last_ok: float | None = None
    gap_start: float | None = None
    for line in path.read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "start":
            log.started = float(fields[1])
        elif fields[0] == "ok":
            kind, write_id, at = fields[1], int(fields[2]), float(fields[3])
            log.acknowledged[write_id] = kind
            if kind == "web":
                if gap_start is not None:
                    log.unavailable.append((gap_start, at))
                    gap_start = None
                last_ok = at
                log.ok_times.append(at)
        elif fields[0] in ("down", "fail") and fields[1] == "web":
            log.failed += fields[0] == "fail"
            if gap_start is None:
                gap_start = last_ok if last_ok is not None else float(fields[2])
    if gap_start is not None and log.ok_times:
        log.unavailable.append((gap_start, log.ok_times[-1]))
    return log


@dataclass
class Rehearsal:
    """The whole rehearsal's outcome; ``to_json()`` is what ``--json`` prints."""

    phases: list[dict[str, Any]]
    write_unavailable_seconds: float
    write_windows: list[tuple[float, float]]
    acknowledged_writes: int
    lost_writes: int
    lost_cache_writes: int
    verified: bool
    verification: dict[str, Any]
    dataset: dict[str, int]
    started_at: float
    seconds: float
    setup_seconds: float
    #: The freeze: its mode, each live copy's lag as it began, changes drained inside it, its length
    #: (freeze's start to unfreeze's end) and the seconds each phase inside it took.
    freeze: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["write_windows"] = [
            {"from_seconds": round(a - self.started_at, 3), "to_seconds": round(b - self.started_at, 3)}
            for a, b in self.write_windows
        ]
        data["write_unavailable_seconds"] = round(self.write_unavailable_seconds, 3)
        data["seconds"] = round(self.seconds, 3)
        data["setup_seconds"] = round(self.setup_seconds, 3)
        return data


def _markdown(result: Rehearsal) -> str:
    lines = [
        "# ferry rehearsal",
        "",
        f"- **Write-unavailable window** (longest the app could not write): **{result.write_unavailable_seconds:.2f} s**",
        f"- **Lost writes**: **{result.lost_writes}** of {result.acknowledged_writes} acknowledged"
        f" (cache: {result.lost_cache_writes})",
        f"- **Verified copy**: {'yes' if result.verified else 'NO'} ({', '.join(result.verification) or 'nothing'})",
        "- **Data set**: " + ", ".join(f"{value} {key}" for key, value in result.dataset.items()),
        f"- **Run**: {result.seconds:.1f} s from the app's start (servers and data set up before: {result.setup_seconds:.1f} s)",
        *_freeze_lines(result.freeze),
        "",
        "| phase | status | seconds | detail |",
        "|---|---|---:|---|",
    ]
    lines += [
        f"| {p['name']} | {p['status']} | {p['seconds']:.2f} | {str(p['detail']).replace('|', '/')} |"
        for p in result.phases
    ]
    lines += ["", "![timeline](timeline.svg)", ""]
    return "\n".join(lines)


def _freeze_lines(freeze: dict[str, Any]) -> list[str]:
    if not freeze:
        return []
    lag = "; ".join(
        f"{store} {values.get('queued', 0):.0f} changes waiting, {values.get('seconds_behind', 0.0):.1f} s behind"
        for store, values in freeze.get("lag_before", {}).items()
    )
    parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in freeze.get("phases", {}).items())
    return [
        f"- **Freeze** ({freeze.get('mode')}): {freeze.get('seconds', 0.0):.2f} s from its start to the unfreeze: {parts}",
        f"- **Lag before the freeze**: {lag or 'no live copy'}; **changes drained inside it**: "
        f"{freeze.get('drained', 0)}",
    ]


def _svg(result: Rehearsal) -> str:
    """Phases as bars on a time axis, and the app's write-unavailable windows beneath them."""
    width, left, row, top = 900, 110, 22, 30
    span = max(result.seconds, 0.001)
    scale = (width - left - 20) / span
    rows = len(result.phases) + 1
    height = top + rows * row + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="18" font-weight="bold">ferry rehearsal: phases, and the app\'s writes '
        f"(red: unavailable, longest {result.write_unavailable_seconds:.2f} s; lost: {result.lost_writes})</text>",
    ]
    for index, phase in enumerate(result.phases):
        y = top + index * row
        x = left + (phase["offset_seconds"]) * scale
        bar = max(phase["seconds"] * scale, 1.5)
        color = {"done": "#4c78a8", "skipped": "#bbbbbb"}.get(phase["status"], "#e45756")
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(phase["name"])}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{bar:.1f}" height="{row - 6}" fill="{color}"/>')
        parts.append(f'<text x="{x + bar + 4:.1f}" y="{y + 14}" fill="#555">{phase["seconds"]:.1f} s</text>')
    y = top + len(result.phases) * row
    parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" font-weight="bold">app writes</text>')
    parts.append(f'<rect x="{left}" y="{y + 3}" width="{span * scale:.1f}" height="{row - 6}" fill="#54a24b"/>')
    for start, end in result.write_windows:
        x = left + (start - result.started_at) * scale
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 3}" width="{max((end - start) * scale, 1.5):.1f}" height="{row - 6}" fill="#e45756">'
            f"<title>writes unavailable {end - start:.2f} s</title></rect>"
        )
    axis = top + rows * row + 12
    for tick in range(0, int(span) + 1, max(1, int(span // 10) or 1)):
        x = left + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{axis - 8}" stroke="#ddd"/>')
        parts.append(f'<text x="{x:.1f}" y="{axis + 4}" text-anchor="middle" fill="#555">{tick}s</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_reports(result: Rehearsal, directory: Path) -> dict[str, str]:
    """Write ``rehearsal.json``, ``rehearsal.md`` and ``timeline.svg``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "json": directory / "rehearsal.json",
        "markdown": directory / "rehearsal.md",
        "timeline": directory / "timeline.svg",
    }
    result.files = {key: str(path) for key, path in files.items()}
    files["json"].write_text(json.dumps(result.to_json(), indent=2) + "\n")
    files["markdown"].write_text(_markdown(result))
    files["timeline"].write_text(_svg(result))
    return result.files
