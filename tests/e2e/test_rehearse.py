"""``ferry rehearse`` end to end: local servers, a writing app, the whole runbook, the report."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from migration.rehearse.report import read_app_log
from migration.runbook.back import BACK_PHASES
from migration.runbook.run import PHASE_NAMES
from tests.helpers import ferry


def test_rehearse_moves_every_store_behind_the_fence_and_back_without_losing_a_write(tmp_path: Path) -> None:
    """The move, then (``--rollback``) the app on the new stores a while and the rollback while it writes."""
    report_dir = tmp_path / "report"
    run = ferry("rehearse", "--report-dir", str(report_dir), "--customers", "2000", "--rollback",
                "--after-switch-seconds", "2", "--json", timeout=600)  # fmt: skip
    assert run.code == 0, run.output
    result = run.json
    back_phases = [phase.name for phase in BACK_PHASES]
    assert [phase["name"] for phase in result["phases"]] == [*PHASE_NAMES, *back_phases, "rollback"]
    statuses = {phase["name"]: phase["status"] for phase in result["phases"]}
    # Targets given as URLs: nothing to provision, nothing to settle.
    assert statuses.pop("provision") == statuses.pop("settle") == "skipped" and set(statuses.values()) == {"done"}
    # Back: every write acknowledged on either side is on the old stores at the end, both directions verified.
    back = result["rollback"]
    assert back["lost_writes"] == 0 and back["verified"] is True and back["freeze"]["mode"] == "fence"
    assert back["lost_writes_by_store"] == back["lost_forward_by_store"] == {"postgres": 0, "redis": 0, "s3": 0}
    for store in ("postgres", "redis", "s3"):
        sides = back["acknowledged_by_side"][store]
        assert sides["new"] > 0 and sides["old after the rollback"] > 0, (store, sides)
    assert {"back:postgres", "back:postgres:witness", "back:redis", "back:s3:shop-rehearsal-uploads"} <= set(
        back["verification"]
    )
    assert 0 < back["write_unavailable_seconds"] < 30
    assert result["lost_writes"] == 0 and result["lost_writes_by_store"] == {"postgres": 0, "redis": 0, "s3": 0}
    acknowledged = result["acknowledged_by_store"]
    assert acknowledged["postgres"] > 40 and acknowledged["redis"] > 40 and acknowledged["s3"] > 10
    assert result["acknowledged_writes"] == sum(acknowledged.values())
    assert result["verified"] is True
    assert set(result["verification"]) == {
        "postgres", "postgres:witness", "postgres:witness before the switch", "redis", "s3:shop-uploads-heroku"
    }  # fmt: skip
    # The freeze's witness, which reads no log, found nothing written past it: at the verify and at the switch.
    assert all(v["identical"] for k, v in result["verification"].items() if k.startswith("postgres:witness"))
    # The app uploaded after the switch, to the new bucket, and the check after the switch counted it as its own.
    assert result["verification"]["s3:shop-uploads-heroku"]["details"]["written_by_the_app_since_the_switch"] > 0
    # Every row checksummed while the app wrote; inside the freeze only what changed since, and the counts.
    details = {phase["name"]: phase["detail"] for phase in result["phases"]}
    live_rows = int(details["catch-up"].split("verified live: ")[1].split(" rows")[0])
    assert live_rows > 20_000
    postgres = result["verification"]["postgres"]
    assert postgres["details"]["mode"] == "changes" and postgres["checked"]["rows"] < live_rows
    # Redis the same way: every key while live; inside the freeze the keys the witnesses saw written since.
    live_keys = int(details["catch-up"].split("redis: verified live: ")[1].split(" keys")[0])
    redis_check = result["verification"]["redis"]
    assert live_keys > 2000 and redis_check["checked"]["keys"] < live_keys / 4
    assert "written since the live pass" in redis_check["notes"][0]
    freeze = result["freeze"]
    assert freeze["mode"] == "fence" and set(freeze["lag_before"]) == {"postgres", "redis", "s3"}
    assert freeze["seconds"] >= sum(freeze["phases"].values()) - 0.01
    assert f"postgres: {freeze['drained']} changes drained" in details["final-sync"]
    assert "fenced for every role" in details["freeze"] and "maintenance" not in details["freeze"]
    # The detach and the variables' release, one after the other inside the freeze; the alias was before it.
    assert result["releases_in_freeze"] == 3 and "while live (1 release" in details["alias"]
    assert "3 releases in the freeze" in details["switch"]
    assert set(freeze["s3_after_switch"]) >= {"arrived_after_switch", "lag_seconds", "conflicts"}

    # Writes stopped at the freeze and came back after the switch and the restart it made; reads went on.
    offsets = {phase["name"]: phase["offset_seconds"] for phase in result["phases"]}
    window = max(result["write_windows"], key=lambda w: w["to_seconds"] - w["from_seconds"])
    assert offsets["freeze"] - 1.5 <= window["from_seconds"] <= offsets["final-sync"]
    assert offsets["switch"] <= window["to_seconds"] <= offsets["unfreeze"] + 5
    gap = result["write_unavailable_seconds"]
    assert 0 < gap == pytest.approx(window["to_seconds"] - window["from_seconds"], abs=0.002)
    # Reads fail only while the app restarts (1 s boots: the alias's, while live, and the switch's).
    assert 0 < result["read_unavailable_seconds"] < gap
    assert result["restarts"] >= 2

    files = {key: Path(path) for key, path in result["files"].items()}
    assert json.loads(files["json"].read_text())["lost_writes_by_store"]["s3"] == 0
    markdown = files["markdown"].read_text()
    assert "**Lost writes**: **0**" in markdown and "| final-sync | done |" in markdown
    assert "**Freeze** (fence)" in markdown and "**Read-unavailable window**" in markdown
    assert "**Rollback lost writes**: **0**" in markdown
    svg = ElementTree.parse(files["timeline"]).getroot()
    labels = [element.text for element in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert {*PHASE_NAMES, *back_phases} <= set(labels) and {"app writes", "app reads"} <= set(labels)
    assert (report_dir / "run" / "record.json").exists()
    for path in report_dir.rglob("*"):
        if path.is_file():
            assert "s3cret-pw" not in path.read_text(errors="replace"), path  # the clusters' password


def test_the_app_log_gives_each_stores_write_gap_and_the_read_gap(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(
        "restart 99.0 0\nstart 100.0\nack postgres 1 100.5 web -\nack s3 2 100.5 web old-bucket\n"
        "ack postgres 3 100.6 worker -\nread ok 100.6\ndown web 101.0 maintenance\nread fail 101.0 maintenance\n"
        "fail postgres 102.5 web OperationalError\nfail postgres 102.6 worker OperationalError\n"
        "ack s3 4 102.7 web new-bucket\nread ok 103.0\nack postgres 5 103.25 web -\nack postgres 6 104.0 web -\n"
    )
    parsed = read_app_log(log)
    assert parsed.acknowledged["postgres"] == {1: (100.5, "-"), 3: (100.6, "-"), 5: (103.25, "-"), 6: (104.0, "-")}
    assert set(parsed.acknowledged["s3"]) == {2, 4} and parsed.acknowledged["s3"][4][1] == "new-bucket"
    assert parsed.write_windows["postgres"] == [(100.5, 103.25)]  # a worker's failure is no web window
    assert parsed.write_windows["s3"] == [(100.5, 102.7)]
    assert parsed.read_windows == [(100.6, 103.0)] and parsed.longest_unavailable == 2.75  # merged: postgres
    assert parsed.windows == [(100.5, 103.25)] and parsed.restarts == 1


def test_rehearse_in_maintenance_mode_still_moves_every_store(tmp_path: Path) -> None:
    run = ferry("rehearse", "--report-dir", str(tmp_path), "--customers", "2000", "--freeze", "maintenance",
                "--boot-seconds", "0", "--json", timeout=600)  # fmt: skip
    assert run.code == 0, run.output
    result = run.json
    assert result["lost_writes"] == 0 and result["verified"] is True
    assert result["freeze"]["mode"] == "maintenance"
    assert result["phases"][-1]["name"] == "finish" and result["rollback"] is None  # the move made final
    assert "s3:shop-uploads-heroku" in result["verification"]
    details = {phase["name"]: phase["detail"] for phase in result["phases"]}
    assert "maintenance on" in details["freeze"]
    # Maintenance mode refuses reads too: the read window is the write window's.
    assert result["read_unavailable_seconds"] > 0.5
    refused = ferry("rehearse", "--report-dir", str(tmp_path), "--no-capture")
    assert refused.code == 2 and "--freeze fence (the default) needs --capture" in refused.stderr
