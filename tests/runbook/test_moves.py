"""A move started again after its rollback: never when its switch began under a stack."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from migration.errors import RunbookError
from migration.runbook import RunSettings
from migration.runbook.moves import _start_again
from migration.runbook.state import PhaseRecord, RunState


@pytest.mark.parametrize("switch", ["failed", "done"])
def test_a_move_rolled_back_after_its_switch_began_under_a_stack_is_not_started_again(
    tmp_path: Path, switch: str
) -> None:
    """Its rollback declared the add-on attached again (``rolled_back``): the next alias would undeclare it."""
    settings = RunSettings(stack="qa", root=tmp_path, state_dir=tmp_path / "moves" / "blog", move="blog")
    state = RunState(stack="qa", rolled_back=True)
    state.phases["switch"] = PhaseRecord(status=switch, started_at=time.time())  # type: ignore[arg-type]
    state.save(settings.state_file)
    with pytest.raises(RunbookError, match="rolled back after its switch began"):
        _start_again(settings, lambda _line: None)
    assert RunState.load(settings.state_file, "qa").rolled_back  # left as it was
    assert not list(settings.state_dir.glob("rolled-back-*.json"))
