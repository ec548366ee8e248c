"""``ferry rehearse`` end to end: local servers, a writing app, the whole runbook, the report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from migration.rehearse.report import read_app_log
from migration.runbook.run import PHASE_NAMES
from tests.helpers import ferry


def test_rehearse_runs_every_phase_without_losing_a_write(tmp_path: Path) -> None:
    report_dir = tmp_path / "report"
    run = ferry("rehearse", "--report-dir", str(report_dir), "--customers", "2000", "--json", timeout=600)
    assert run.code == 0, run.output
    result = run.json
    assert [phase["name"] for phase in result["phases"]] == list(PHASE_NAMES)
    statuses = {phase["name"]: phase["status"] for phase in result["phases"]}
    assert statuses.pop("provision") == "skipped" and set(statuses.values()) == {"done"}
    assert result["lost_writes"] == 0 and result["lost_cache_writes"] == 0
    assert result["acknowledged_writes"] > 40
    assert result["verified"] is True
    assert set(result["verification"]) == {
        "postgres", "postgres:witness", "postgres:witness before the switch", "redis", "s3:shop-uploads-heroku"
    }  # fmt: skip
    # The freeze's witness, which reads no log, found nothing written past it: at the verify and at the switch.
    assert all(v["identical"] for k, v in result["verification"].items() if k.startswith("postgres:witness"))
    # Every row checksummed while the app wrote; inside the freeze only what changed since, and the counts.
    details = {phase["name"]: phase["detail"] for phase in result["phases"]}
    live_rows = int(details["catch-up"].split("verified live: ")[1].split(" rows")[0])
    assert live_rows > 20_000
    postgres = result["verification"]["postgres"]
    assert postgres["details"]["mode"] == "changes" and postgres["checked"]["rows"] < live_rows
    freeze = result["freeze"]
    assert freeze["mode"] == "maintenance" and set(freeze["lag_before"]) == {"postgres", "redis"}
    assert freeze["seconds"] >= sum(freeze["phases"].values()) - 0.01
    # What the freeze reports drained is what final-sync's own line counted.
    assert f"postgres: {freeze['drained']} changes drained" in details["final-sync"]

    # The app wrote until the freeze, could not write during the final sync, and wrote again after the unfreeze.
    offsets = {phase["name"]: phase["offset_seconds"] for phase in result["phases"]}
    [window] = result["write_windows"]
    assert offsets["freeze"] - 0.5 <= window["from_seconds"] <= offsets["final-sync"]
    assert offsets["unfreeze"] <= window["to_seconds"] <= offsets["unfreeze"] + 5
    gap = result["write_unavailable_seconds"]
    assert 0 < gap == pytest.approx(window["to_seconds"] - window["from_seconds"], abs=0.002)

    files = {key: Path(path) for key, path in result["files"].items()}
    assert json.loads(files["json"].read_text())["lost_writes"] == 0
    markdown = files["markdown"].read_text()
    assert "**Lost writes**: **0**" in markdown and "| final-sync | done |" in markdown
    assert "**Freeze** (maintenance)" in markdown and "**Lag before the freeze**: postgres" in markdown
    svg = ElementTree.parse(files["timeline"]).getroot()
    labels = [element.text for element in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert set(PHASE_NAMES) <= set(labels) and "app writes" in labels
    assert (report_dir / "run" / "record.json").exists()
    for path in report_dir.rglob("*"):
        if path.is_file():
            assert "s3cret-pw" not in path.read_text(errors="replace"), path  # the clusters' password


def test_the_app_log_gives_the_write_gap(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        "start 100.0\nok web 1 100.5\nok worker 2 100.6\ndown web 101.0 maintenance\ndown web 102.0 maintenance\n"
        "fail web 102.5 OperationalError\nok web 3 103.25\nok web 4 104.0\n"
    )
    parsed = read_app_log(log)
    assert parsed.acknowledged == {1: "web", 2: "worker", 3: "web", 4: "web"}
    assert parsed.unavailable == [(100.5, 103.25)] and parsed.longest_unavailable == 2.75
    assert parsed.failed == 1


def test_rehearse_with_the_fence_stops_every_write_without_maintenance_mode(tmp_path: Path) -> None:
    run = ferry("rehearse", "--report-dir", str(tmp_path), "--customers", "2000", "--freeze", "fence", "--json",
                timeout=600)  # fmt: skip
    assert run.code == 0, run.output
    result = run.json
    assert result["lost_writes"] == 0 and result["lost_cache_writes"] == 0 and result["verified"] is True
    assert result["freeze"]["mode"] == "fence"
    # Only maintenance mode stops S3 writes.
    assert set(result["verification"]) == {
        "postgres",
        "postgres:witness",
        "postgres:witness before the switch",
        "redis",
    }
    details = {phase["name"]: phase["detail"] for phase in result["phases"]}
    assert "fenced for every role" in details["freeze"] and "maintenance" not in details["freeze"]
    # No drain of requests in flight: the window is the drain of the log, the verify and the switch.
    assert 0 < result["write_unavailable_seconds"] < 5
    refused = ferry("rehearse", "--report-dir", str(tmp_path), "--freeze", "fence", "--no-capture")
    assert refused.code == 2 and "--freeze fence needs --capture" in refused.stderr
