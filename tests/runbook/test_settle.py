"""Phase ``settle``: after the smoke checks, one stack update that sets ``ferry:database.settled`` — the load class
given back for ``instanceClass``, the read replicas created, the app given the first one's URL; repeated as it is
after a kill; nothing to do without a stack or without a load class or replicas; on the caller under ``--runner``
(a control phase, as the smoke checks are: no task waits on it).

The stack is ``migration.infra.Infra`` itself over a stand-in for the Automation API's stack: ``set_config`` writes
the stack file as ``pulumi config set --path`` does, ``up`` runs ``__main__.py`` on that file under Pulumi's mocks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi.automation import ConfigValue

from migration.errors import RunbookError
from migration.infra import Infra
from migration.runbook.context import RunContext, RunSettings
from migration.runbook.phases import run_phase
from migration.runbook.run import PHASES
from migration.runbook.state import RunState
from migration.runbook.tasks import legs, runner_order
from migration.stackconfig import load_stack_file
from tests.support.pulumi_program import ROOT, Outcome, run_program

NOTHING = "nothing to settle: no database.loadInstanceClass besides instanceClass, no readReplicas"
SETTLE = next(phase for phase in PHASES if phase.name == "settle")
INSTANCE = "aws:rds/instance:Instance"
LOADED = {"loadInstanceClass": "db.r7g.4xlarge", "readReplicas": 2, "replicaInstanceClass": "db.r7g.large",
          "replicaConfigVar": "DATABASE_REPLICA_URL"}  # fmt: skip


class _AutomationStack:
    """The Automation API's stack as ``Infra`` uses it: config written into ``Pulumi.qa.yaml`` (a ``--path`` key
    as ``pulumi config set --path`` nests it, the value as the text it was given), ``up`` the program under mocks
    on that file. Every call is logged, and each update's declarations kept."""

    def __init__(self, root: Path) -> None:
        self.file = root / "Pulumi.qa.yaml"
        self.log: list[tuple[Any, ...]] = []
        self.updates: list[Outcome] = []

    def set_config(self, key: str, value: ConfigValue, *, path: bool = False) -> None:
        self.log.append(("set", key, value.value, path))
        document = yaml.safe_load(self.file.read_text())
        top, _, nested = key.partition(".")
        if path and nested:
            document["config"][top][nested] = value.value
        else:
            document["config"][key] = value.value
        self.file.write_text(yaml.safe_dump(document))

    def up(self, **options: Any) -> None:
        self.log.append(("up", options["message"]))
        config = yaml.safe_load(self.file.read_text())["config"]
        # As the engine hands config to a program: objects as JSON text.
        self.updates.append(
            run_program("qa", {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})
        )

    def outputs(self) -> dict[str, Any]:
        class _Output:
            def __init__(self, value: Any, secret: bool) -> None:
                self.value, self.secret = value, secret

        last = self.updates[-1]
        return {key: _Output(value, key in last.secret_outputs) for key, value in last.outputs.items()}


def _stack_file(root: Path, **database: Any) -> None:
    document = yaml.safe_load((ROOT / "Pulumi.qa.yaml").read_text())
    document["config"]["ferry:database"] |= database
    document["config"]["ferry:cutover"] = "switched"  # as the switch left it
    document["config"]["ferry:migration"]["loading"] = False
    (root / "Pulumi.qa.yaml").write_text(yaml.safe_dump(document))


def _context(root: Path, stack: _AutomationStack, *, target_url: str | None = None) -> RunContext:
    """The run's context as a new ``ferry run`` opens it: the stack file and the state read from disk."""
    settings = RunSettings(stack="qa", root=root, state_dir=root / ".ferry", target_url=target_url)
    state = RunState.load(settings.state_file, "qa")
    ctx = RunContext(settings=settings, config=load_stack_file(root, "qa"), state=state, say=lambda _line: None,
                     confirm=lambda _question: True)  # fmt: skip
    infra = Infra.__new__(Infra)  # no CLI here: the Automation API's stack is the stand-in
    infra._stack = stack  # type: ignore[assignment]
    infra._on_output = lambda _line: None
    ctx._infra = infra
    return ctx


def _switched_and_unfrozen(ctx: RunContext) -> None:
    for name in ("switch", "unfreeze"):
        ctx.state.start(name)
        ctx.state.finish(name, "done", "", 1.0)
    ctx.save()


def _instances(outcome: Outcome) -> dict[str, dict[str, Any]]:
    return {r.name: r.inputs for r in outcome.of_type(INSTANCE)}


def test_settle_comes_after_the_smoke_checks_and_asks_nothing() -> None:
    """A replica's minutes hold up neither the buckets' catch-up, nor the follow back, nor a rollback the smoke
    checks call for."""
    names = [phase.name for phase in PHASES]
    assert names[names.index("smoke") + 1] == "settle"
    assert names.index("after-switch") < names.index("follow-back") < names.index("settle")
    assert SETTLE.asks is None


def test_settle_runs_one_update_giving_back_the_load_class_and_creating_the_replicas(tmp_path: Path) -> None:
    _stack_file(tmp_path, **LOADED)
    stack = _AutomationStack(tmp_path)
    ctx = _context(tmp_path, stack)
    _switched_and_unfrozen(ctx)
    run_phase(ctx, SETTLE)
    assert stack.log == [
        ("set", "ferry:database.settled", "true", True),
        ("up", "ferry: settle the database (instance class, read replicas)"),
    ]
    record = ctx.state.phases["settle"]
    assert record.status == "done" and record.seconds > 0  # timed as a phase of its own
    assert record.detail == (
        "instance class db.r7g.4xlarge → db.m7g.large, applied at once (Multi-AZ: a failover of seconds); "
        "2 read replicas (db.r7g.large); DATABASE_REPLICA_URL set to the first replica's read-only URL; "
        "replicas at shop-qa-replica-1.c0ffee.us-east-1.rds.amazonaws.com, "
        "shop-qa-replica-2.c0ffee.us-east-1.rds.amazonaws.com"
    )
    # The stack file says so for every update after it (a rollback's keeps the database settled).
    assert load_stack_file(tmp_path, "qa").database.settled is True
    declared = _instances(stack.updates[0])
    assert declared["database"]["instanceClass"] == "db.m7g.large"
    assert {name: inputs["replicateSourceDb"] for name, inputs in declared.items() if name != "database"} == {
        "database-replica-1": "shop-qa",
        "database-replica-2": "shop-qa",
    }
    assert ctx.stack_outputs().values["databaseReplicaEndpoints"] == [
        "shop-qa-replica-1.c0ffee.us-east-1.rds.amazonaws.com",
        "shop-qa-replica-2.c0ffee.us-east-1.rds.amazonaws.com",
    ]


def test_a_settle_killed_mid_update_is_the_same_update_again_on_the_next_run(tmp_path: Path) -> None:
    """kill -9 during ``pulumi up``: the flag already in the stack file, the phase recorded as started only. The
    next run does the same update again; one more changes nothing (the same declarations)."""
    _stack_file(tmp_path, **LOADED)
    stack = _AutomationStack(tmp_path)
    killed = _context(tmp_path, stack)
    _switched_and_unfrozen(killed)
    killed.state.start("settle")
    killed.save()
    stack.set_config("ferry:database.settled", ConfigValue(value="true"), path=True)  # then the kill, in the up

    resumed = _context(tmp_path, stack)
    assert resumed.config.database.settled and not resumed.state.done("settle")
    run_phase(resumed, SETTLE)
    assert resumed.state.phases["settle"].status == "done" and resumed.state.phases["settle"].attempts == 2
    again = _context(tmp_path, stack)
    run_phase(again, SETTLE)  # --from settle
    assert [entry[0] for entry in stack.log] == ["set", "set", "up", "set", "up"]
    first, second = (_instances(update) for update in stack.updates)
    assert first == second and len(first) == 3
    assert again.state.phases["settle"].detail == resumed.state.phases["settle"].detail


@pytest.mark.parametrize(
    ("database", "target_url", "detail"),
    [
        ({}, None, NOTHING),
        ({"loadInstanceClass": "db.m7g.large"}, None, NOTHING),  # instanceClass itself: no change to make
        (LOADED, "postgres://u:p@target/shop", "nothing to settle: the target was given as URLs"),
    ],
)
def test_nothing_to_settle_makes_no_update(
    tmp_path: Path, database: dict[str, Any], target_url: str | None, detail: str
) -> None:
    _stack_file(tmp_path, **database)
    stack = _AutomationStack(tmp_path)
    ctx = _context(tmp_path, stack, target_url=target_url)
    _switched_and_unfrozen(ctx)
    run_phase(ctx, SETTLE)
    assert (ctx.state.phases["settle"].status, ctx.state.phases["settle"].detail) == ("skipped", detail)
    assert stack.log == [] and not load_stack_file(tmp_path, "qa").database.settled


def test_settle_before_the_switch_and_the_unfreeze_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    _stack_file(tmp_path, **LOADED)
    stack = _AutomationStack(tmp_path)
    ctx = _context(tmp_path, stack)
    with pytest.raises(RunbookError, match="settle comes after switch and unfreeze: the instance is still the load"):
        run_phase(ctx, SETTLE)
    assert ctx.state.phases["settle"].status == "failed"
    assert stack.log == [] and not load_stack_file(tmp_path, "qa").database.settled


def _legs(selected: list[str]) -> list[tuple[str | None, list[str]]]:
    chosen = [phase for phase in runner_order(PHASES) if phase.name in selected]
    return [(phase.name if phase else None, leg) for phase, leg in legs(chosen)]


def test_under_a_runner_the_caller_settles_between_the_smoke_checks_and_the_record() -> None:
    """Pulumi runs on the caller: ``settle`` is a control phase, outside every task's leg."""
    taken = _legs([phase.name for phase in PHASES])
    assert taken[[phase for phase, _ in taken].index("settle") - 1 :][:3] == [("smoke", []), ("settle", []),
                                                                            ("record", [])]  # fmt: skip
    assert not any("settle" in leg for _, leg in taken)
    assert _legs(["settle", "record", "cleanup"]) == [("settle", []), ("record", []), (None, ["cleanup"])]
