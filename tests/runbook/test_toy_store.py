"""Adding a store is one module and one registration line: a toy store, registered beside the real ones,
is driven through every phase of a run and of its rollback by nothing but the Store interface."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import pytest

import migration.runbook.stores as registry
from migration.runbook import RunSettings, rollback, run
from migration.runbook.context import RunSettings as Settings
from migration.runbook.state import StoreState
from migration.runbook.stores.base import ProgressFor, Side, Store, StoreRun, StoreVerify, Whereabouts
from migration.stackconfig import MovedAddon, StackConfig
from migration.verify import Difference, VerifyReport
from tests.support.world import World, stack_file

TOY = MovedAddon("toy-box-1", "TOY", "TOY_OLD")


@dataclass
class ToyState(StoreState):
    """The toy's own section of the run state."""

    files_copied: int = 0
    calls: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ToyConfig:
    freeze: str


ToyRun: TypeAlias = StoreRun[ToyConfig, ToyState, Path]


class ToyStore(Store[ToyConfig, ToyState, Path]):
    """A directory of files: copied while live and again inside the freeze, frozen by a marker file."""

    name = "toy"
    section = ToyState

    def __init__(self, target: Path) -> None:
        self.target = target

    def configure(self, config: StackConfig, settings: Settings) -> ToyConfig:
        return ToyConfig(freeze=config.migration.freeze)

    def moves(self, config: ToyConfig, where: Whereabouts) -> bool:
        return where.old_url(TOY) is not None

    def addons(self, stack: StackConfig) -> list[MovedAddon]:
        return [TOY]

    def endpoint(self, where: Whereabouts, side: Side) -> Path:
        if side == "target":
            return self.target
        url = where.old_url(TOY)
        assert url is not None
        return Path(url.removeprefix("file://"))

    def switched_config(self, run: ToyRun) -> dict[str, str]:
        return {"TOY_URL": f"file://{run.to_side}"}

    def recorded(self, run: ToyRun) -> dict[str, Any]:
        return {"toy": str(run.to_side)}

    def _called(self, run: ToyRun, phase: str) -> None:
        run.state.calls.append(phase)
        run.save()

    def preflight(self, run: ToyRun) -> None:
        self._called(run, "preflight")

    def check_freeze(self, run: ToyRun) -> None:
        self._called(run, "check_freeze")

    def copy_live(self, run: ToyRun) -> str:
        self._called(run, "copy_live")
        return self._copy(run)

    def freeze_writes(self, run: ToyRun) -> str:
        self._called(run, "freeze_writes")
        (run.from_side / ".frozen").touch()
        return "toy frozen"

    def writes_stopped(self, run: ToyRun) -> str:
        self._called(run, "writes_stopped")
        return ""

    def unfreeze_writes(self, run: ToyRun) -> str:
        self._called(run, "unfreeze_writes")
        (run.from_side / ".frozen").unlink(missing_ok=True)
        return "toy unfrozen"

    def final_sync(self, run: ToyRun, progress_for: ProgressFor) -> str:
        self._called(run, "final_sync")
        return self._copy(run)

    def verify(self, run: ToyRun) -> list[StoreVerify]:
        self._called(run, "verify")
        report = VerifyReport(store="toy")
        for path in sorted(_files(run.from_side)):
            if not (run.to_side / path).exists():
                report.add(Difference("missing on target", path, "present", "absent"))
        return [StoreVerify.of("toy", report)]

    def prove_frozen(self, run: ToyRun) -> list[StoreVerify]:
        self._called(run, "prove_frozen")
        return []

    def stop_following(self, run: ToyRun) -> str:
        self._called(run, "stop_following")
        return ""

    def finish_target(self, run: ToyRun) -> str:
        self._called(run, "finish_target")
        return ""

    def cleanup(self, run: ToyRun) -> str:
        self._called(run, "cleanup")
        return ""

    def _copy(self, run: ToyRun) -> str:
        copied = 0
        for path in _files(run.from_side):
            shutil.copy2(run.from_side / path, run.to_side / path)
            copied += 1
        run.state.files_copied = copied
        run.save()
        return f"toy: {copied} files"


def _files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")]


def test_a_registered_toy_store_is_driven_through_every_phase(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = tmp_path / "toy-source", tmp_path / "toy-target"
    source.mkdir()
    target.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (source / name).write_text(name)
    world.fake.add_addon("shop", TOY.addon, "toy-box", f"file://{source}", attach_as="TOY")
    stack_file(world.root, "http://127.0.0.1:9", freeze="read-only", smokeUrls=[])
    monkeypatch.setattr(registry, "STORES", (*registry.STORES, ToyStore(target)))
    for name in ("HEROKU_API_KEY", "HEROKU_API_URL"):
        monkeypatch.setenv(name, world.env[name])
    settings = RunSettings(
        stack="test", root=world.root, state_dir=world.root / ".ferry" / "test",
        target_url=world.target_db.url, target_redis_url=world.target_redis.url(), yes=True,
    )  # fmt: skip

    report = run(settings, say=lambda _line: None, confirm=lambda _question: True)

    assert sorted(_files(target)) == ["a.txt", "b.txt", "c.txt"]
    state = json.loads(settings.state_file.read_text())
    toy = state["stores"]["toy"]
    # Its own section, with its own fields, kept beside the real stores' in the one state file.
    assert toy["files_copied"] == 3 and set(state["stores"]) >= {"postgres", "redis", "toy"}
    assert toy["calls"] == [
        "check_freeze", "preflight", "copy_live", "freeze_writes", "writes_stopped", "final_sync",
        "verify", "prove_frozen", "finish_target", "cleanup",
    ]  # fmt: skip
    assert state["verify"]["toy"]["identical"] is True
    # The cutover moved its add-on like the real ones': aliased, detached, its config var switched.
    config = world.fake.apps["shop"].config
    assert config["TOY_URL"] == f"file://{target}" and config["TOY_OLD_URL"] == f"file://{source}"
    record = json.loads((settings.state_dir / "record.json").read_text())
    assert record["targets"]["toy"] == str(target)
    assert (source / ".frozen").exists()  # after the switch the old side stays closed, as the real ones do
    assert [phase.name for phase in report.phases][-1] == "cleanup"

    rollback(settings, say=lambda _line: None, discard_writes_since_switch=True)

    calls = json.loads(settings.state_file.read_text())["stores"]["toy"]["calls"]
    assert calls[-3:] == ["stop_following", "unfreeze_writes", "cleanup"]
    assert not (source / ".frozen").exists()
    assert world.fake.apps["shop"].config["TOY_URL"] == f"file://{source}"


def test_the_same_store_moves_the_other_way_given_its_sides_reversed(tmp_path: Path) -> None:
    """What a reverse follow stands on: a store's phases only know ``from_side`` and ``to_side``."""
    from migration.runbook.state import RunState
    from migration.runbook.stores.base import FreezeView

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (new / "written-after-the-switch.txt").write_text("kept")
    state = RunState(stack="test")
    run: ToyRun = StoreRun(
        "toy", ToyConfig(freeze="fence"), state.section("toy", ToyState), {"source": old, "target": new}.__getitem__,
        FreezeView("fence", state), save=lambda: None, say=lambda _line: None, work_dir=tmp_path,
    )  # fmt: skip
    back = run.reversed()
    assert (back.from_side, back.to_side) == (new, old) and back.state is run.state
    ToyStore(new).copy_live(back)
    assert (old / "written-after-the-switch.txt").read_text() == "kept"
    assert back.reversed().from_side == old
