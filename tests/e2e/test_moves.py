"""Several databases of two apps into one instance, move by move (``ferry:moves``), while both apps write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migration.rehearse.consolidate import rehearse_moves
from migration.runbook.state import RunState
from tests.helpers import assert_one_line_error, ferry


def test_a_failed_move_is_rolled_back_and_the_next_run_finishes_the_rest(tmp_path: Path) -> None:
    lines: list[str] = []
    result = rehearse_moves(tmp_path / "report", 3, customers=300, jobs=2, boot_seconds=0.0, fail_move="blog",
                            keep=False, say=lines.append)  # fmt: skip
    failed = result.failed_first
    assert failed is not None
    # The second move failed inside its freeze: rolled back (its app on its old database), the first switched.
    assert failed["rolled_back"] and failed["switched_before"] == ["shop"]
    assert "move blog: phase verify failed" in failed["message"] and "moves done: shop" in failed["message"]
    assert [move["name"] for move in result.moves] == ["shop", "blog", "analytics"]
    for move in result.moves:
        assert move["switched"] and move["verified"], move
        assert move["acknowledged_writes"] > 0 and move["lost_writes"] == 0, move
    assert {move["app"] for move in result.moves} == {"shop-rehearsal", "blog-rehearsal"}
    document = json.loads((tmp_path / "report" / "rehearsal.json").read_text())
    assert document["lost_writes"] == 0 and document["verified"]
    assert [m["name"] for m in document["moves"]] == ["shop", "blog", "analytics"]
    # Its first attempt's state kept aside; the move's own state is the second attempt's.
    assert list((tmp_path / "report" / "run" / "moves" / "blog").glob("rolled-back-*.json"))
    assert any("[move blog] rolled back earlier: starts again" in line for line in lines)


def test_a_run_killed_in_the_second_moves_switch_is_finished_by_the_next(tmp_path: Path) -> None:
    result = rehearse_moves(tmp_path / "report", 2, customers=200, jobs=2, boot_seconds=0.0, fail_move=None,
                            keep=False, say=lambda _line: None, crash_at="phase-switch:2")  # fmt: skip
    assert [(m["name"], m["switched"], m["verified"], m["lost_writes"]) for m in result.moves] == [
        ("shop", True, True, 0),
        ("blog", True, True, 0),
    ]
    state = RunState.load(tmp_path / "report" / "run" / "moves" / "blog" / "state.json", "rehearsal")
    assert state.phases["switch"].attempts == 2  # killed once, done again


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--move", "nope"], "has no move 'nope' (its moves: none"),
        (["rollback", "--move", "shop"], "has no move 'shop'"),
        (["run", "--move", ""], "--move needs a move's name"),
    ],
)
def test_a_move_a_stack_does_not_list_is_refused_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    stack = Path(__file__).parents[2] / "Pulumi.ci.yaml"
    (tmp_path / "Pulumi.ci.yaml").write_text(stack.read_text())
    ran = ferry(*args, "--stack", "ci", "--root", str(tmp_path), "--platform", f"local:{tmp_path}")
    assert_one_line_error(ran, message, code=ran.code if ran.code else -1)


def test_moves_switched_together_share_one_freeze_and_fail_together(tmp_path: Path) -> None:
    """The shop app's two databases (``together``): a failure in the second's verify rolls both back, neither
    switched; the next run moves both in one freeze, then the blog."""
    lines: list[str] = []
    result = rehearse_moves(tmp_path / "report", 3, customers=300, jobs=2, boot_seconds=0.0, fail_move="analytics",
                            keep=False, say=lines.append, together=True)  # fmt: skip
    failed = result.failed_first
    assert failed is not None and failed["switched_before"] == [] and failed["rolled_back"]
    assert failed["rolled_back_moves"] == ["shop", "analytics"]
    assert "[move shop + analytics] 1 of 3" in lines
    assert all(m["switched"] and m["verified"] and m["lost_writes"] == 0 for m in result.moves), result.moves
    states = {n: RunState.load(tmp_path / "report" / "run" / "moves" / n / "state.json", "rehearsal")
              for n in ("shop", "analytics")}  # fmt: skip
    # One freeze: both frozen before either was switched, both switched before either was unfrozen.
    frozen = max(state.phases["freeze"].started_at for state in states.values())
    switched = [state.phases["switch"] for state in states.values()]
    assert frozen < min(record.started_at for record in switched)
    assert max(r.started_at + r.seconds for r in switched) <= min(
        s.phases["unfreeze"].started_at for s in states.values()
    )
