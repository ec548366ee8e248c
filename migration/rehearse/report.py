"""The rehearsal's report: phases, the app's write gap, lost writes; as JSON, Markdown and an SVG timeline."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["AppLog", "Rehearsal", "read_app_log", "write_reports"]


STORE_NAMES = ("postgres", "redis", "s3")


@dataclass
class _Stream:
    """Successes and failures of one kind of request, in time order: its unavailable windows."""

    windows: list[tuple[float, float]] = field(default_factory=list)
    _last_ok: float | None = None
    _gap_start: float | None = None
    _last_seen: float = 0.0

    def ok(self, at: float) -> None:
        if self._gap_start is not None:
            self.windows.append((self._gap_start, at))
            self._gap_start = None
        self._last_ok = self._last_seen = at

    def failed(self, at: float) -> None:
        if self._gap_start is None:
            self._gap_start = self._last_ok if self._last_ok is not None else at
        self._last_seen = at

    def close(self) -> list[tuple[float, float]]:
        if self._gap_start is not None:
            self.windows.append((self._gap_start, self._last_seen))
            self._gap_start = None
        return self.windows


def longest(windows: list[tuple[float, float]]) -> float:
    return max((end - start for start, end in windows), default=0.0)


@dataclass
class AppLog:
    """What the app saw: every acknowledged write per store, and every moment it could not write or read."""

    #: store → write id → (when, the bucket it went to for s3)
    acknowledged: dict[str, dict[int, tuple[float, str]]] = field(default_factory=dict)
    #: store → merged windows its web writes failed
    write_windows: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    read_windows: list[tuple[float, float]] = field(default_factory=list)
    restarts: int = 0
    started: float = 0.0

    @property
    def longest_unavailable(self) -> float:
        """The longest time some write of the app failed (every store's windows merged)."""
        return longest(self.windows)

    @property
    def windows(self) -> list[tuple[float, float]]:
        """Every store's write windows merged: when some write of the app failed."""
        merged: list[tuple[float, float]] = []
        for start, end in sorted(w for windows in self.write_windows.values() for w in windows):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return merged


def read_app_log(path: Path) -> AppLog:
    """Parse the app's log; a window runs from the last good request before a failure to the next good one."""
    log = AppLog(acknowledged={store: {} for store in STORE_NAMES})
    writes = {store: _Stream() for store in STORE_NAMES}
    reads = _Stream()
    for line in path.read_text().splitlines():
        fields = line.split()
        if not fields:
            continue
        what = fields[0]
        if what == "start":
            log.started = float(fields[1])
        elif what == "ack":
            store, write_id, at, kind, bucket = fields[1], int(fields[2]), float(fields[3]), fields[4], fields[5]
            log.acknowledged.setdefault(store, {})[write_id] = (at, bucket)
            if kind == "web":
                writes.setdefault(store, _Stream()).ok(at)
        elif what == "fail" and fields[3] == "web":
            writes.setdefault(fields[1], _Stream()).failed(float(fields[2]))
        elif what == "down":  # maintenance: no request served at all
            at = float(fields[2])
            for stream in (*writes.values(), reads):
                stream.failed(at)
        elif what == "read":
            (reads.ok if fields[1] == "ok" else reads.failed)(float(fields[2]))
        elif what == "restart":
            log.restarts += 1
    log.write_windows = {store: stream.close() for store, stream in writes.items()}
    log.read_windows = reads.close()
    return log


@dataclass
class Rehearsal:
    """The whole rehearsal's outcome; ``to_json()`` is what ``--json`` prints."""

    phases: list[dict[str, Any]]
    write_unavailable_seconds: float
    write_windows: list[tuple[float, float]]
    read_unavailable_seconds: float
    read_windows: list[tuple[float, float]]
    acknowledged_writes: int
    #: Acknowledged and missing on the target, or acknowledged by an old store after the switch (every store's).
    lost_writes: int
    acknowledged_by_store: dict[str, int]
    lost_writes_by_store: dict[str, int]
    write_unavailable_by_store: dict[str, float]
    #: Releases (app restarts) the cutover made inside the freeze, and the app's restarts in all.
    releases_in_freeze: int
    restarts: int
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
    #: ``--rollback``: the rollback after the switch (its window, writes on each side, lost either way, verified).
    rollback: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["write_windows"] = [
            {"from_seconds": round(a - self.started_at, 3), "to_seconds": round(b - self.started_at, 3)}
            for a, b in self.write_windows
        ]
        data["read_windows"] = [
            {"from_seconds": round(a - self.started_at, 3), "to_seconds": round(b - self.started_at, 3)}
            for a, b in self.read_windows
        ]
        data["write_unavailable_seconds"] = round(self.write_unavailable_seconds, 3)
        data["read_unavailable_seconds"] = round(self.read_unavailable_seconds, 3)
        data["write_unavailable_by_store"] = {k: round(v, 3) for k, v in self.write_unavailable_by_store.items()}
        data["seconds"] = round(self.seconds, 3)
        data["setup_seconds"] = round(self.setup_seconds, 3)
        return data


def _markdown(result: Rehearsal) -> str:
    lines = [
        "# ferry rehearsal",
        "",
        f"- **Write-unavailable window** (longest the app could not write): **{result.write_unavailable_seconds:.2f} s**"
        f" ({', '.join(f'{k} {v:.2f} s' for k, v in result.write_unavailable_by_store.items())})",
        f"- **Read-unavailable window** (longest the app could not read): **{result.read_unavailable_seconds:.2f} s**",
        f"- **Lost writes**: **{result.lost_writes}** of {result.acknowledged_writes} acknowledged ("
        + ", ".join(
            f"{store} {result.lost_writes_by_store.get(store, 0)} of {count}"
            for store, count in result.acknowledged_by_store.items()
        )
        + ")",
        f"- **Releases inside the freeze**: {result.releases_in_freeze} (the app restarted {result.restarts} times in all)",
        f"- **Verified copy**: {'yes' if result.verified else 'NO'} ({', '.join(result.verification) or 'nothing'})",
        "- **Data set**: " + ", ".join(f"{value} {key}" for key, value in result.dataset.items()),
        f"- **Run**: {result.seconds:.1f} s from the app's start (servers and data set up before: {result.setup_seconds:.1f} s)",
        *_freeze_lines(result.freeze),
        *_rollback_lines(result.rollback),
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


def _rollback_lines(back: dict[str, Any] | None) -> list[str]:
    if not back:
        return []
    sides = "; ".join(
        f"{store}: " + ", ".join(f"{count} {side}" for side, count in by_side.items())
        for store, by_side in back["acknowledged_by_side"].items()
    )
    lost = ", ".join(f"{k} {v}" for k, v in back["lost_writes_by_store"].items())
    forward = ", ".join(f"{k} {v}" for k, v in back["lost_forward_by_store"].items())
    return [
        f"- **Rollback** after {back['after_switch_seconds']:g} s on the new stores: write-unavailable window "
        f"**{back['write_unavailable_seconds']:.2f} s**, read-unavailable {back['read_unavailable_seconds']:.2f} s; "
        f"freeze {back.get('freeze', {}).get('seconds', 0.0):.2f} s",
        f"- **Rollback lost writes**: **{back['lost_writes']}** (missing from the old stores at the end: {lost}; "
        f"acknowledged before its freeze and missing from the new ones: {forward}); "
        f"verified: {'yes' if back['verified'] else 'NO'}",
        f"- **Writes acknowledged on each side**: {sides}",
    ]


def _svg(result: Rehearsal) -> str:
    """Phases as bars on a time axis, and the app's write-unavailable windows beneath them."""
    width, left, row, top = 900, 110, 22, 30
    span = max(result.seconds, 0.001)
    scale = (width - left - 20) / span
    rows = len(result.phases) + 2
    height = top + rows * row + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="18" font-weight="bold">ferry rehearsal: phases, the app\'s writes and reads '
        f"(red: unavailable, longest {result.write_unavailable_seconds:.2f} s and {result.read_unavailable_seconds:.2f} s; "
        f"lost: {result.lost_writes})</text>",
    ]
    for index, phase in enumerate(result.phases):
        y = top + index * row
        x = left + (phase["offset_seconds"]) * scale
        bar = max(phase["seconds"] * scale, 1.5)
        color = {"done": "#4c78a8", "skipped": "#bbbbbb"}.get(phase["status"], "#e45756")
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(phase["name"])}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{bar:.1f}" height="{row - 6}" fill="{color}"/>')
        parts.append(f'<text x="{x + bar + 4:.1f}" y="{y + 14}" fill="#555">{phase["seconds"]:.1f} s</text>')
    for offset, (label, windows) in enumerate(
        (("app writes", result.write_windows), ("app reads", result.read_windows))
    ):
        y = top + (len(result.phases) + offset) * row
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" font-weight="bold">{label}</text>')
        parts.append(f'<rect x="{left}" y="{y + 3}" width="{span * scale:.1f}" height="{row - 6}" fill="#54a24b"/>')
        for start, end in windows:
            x = left + (start - result.started_at) * scale
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{max((end - start) * scale, 1.5):.1f}" height="{row - 6}" '
                f'fill="#e45756"><title>{label.removeprefix("app ")} unavailable {end - start:.2f} s</title></rect>'
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
