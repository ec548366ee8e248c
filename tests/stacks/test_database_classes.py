"""The database through a run's updates, under mocks: the load class until ``settle`` and ``instanceClass`` after
it; the bulk-load parameters while loading, gone (applied at once) from the switch on; one parameter group, never
replaced; read replicas only once settled, with their endpoints and the app's read-only URL to the first one.

The updates a run makes, in order (``Pulumi.qa.yaml``, Multi-AZ, two databases):

=============  ===================================================================================
provision      ``migration.loading: true``, the load class, no replica
switched       ``cutover: switched`` and ``loading: false`` in one update (``infra.set_cutover``)
settled        ``database.settled: true`` (``infra.settle``): ``instanceClass``, the replicas
rolled_back    a rollback after the settle: the cutover undone, the database left settled
=============  ===================================================================================
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from migration.errors import ConfigError
from migration.platform.rollbackvars import ROLLBACK_VAR
from migration.rehearse.pgcluster import Cluster
from migration.stackconfig import load_stack_file
from stacks.database import _ALWAYS_PARAMETERS, BULK_LOAD_PARAMETERS
from tests.stacks.outcomes import declared, secret_value
from tests.support.pulumi_program import ROOT, Outcome, run_program, stack_config

INSTANCE = "aws:rds/instance:Instance"
GROUP = "aws:rds/parameterGroup:ParameterGroup"
CONFIG = "heroku:app/configAssociation:ConfigAssociation"
LOAD, NORMAL, REPLICA = "db.r7g.4xlarge", "db.m7g.large", "db.r7g.large"
REPLICA_VAR = "DATABASE_REPLICA_URL"

#: PostgreSQL parameters that change without a restart (``pg_settings.context`` user, superuser or sighup: RDS's
#: "dynamic", which takes ``apply_method: immediate``), each with its context. A static one (``postmaster``:
#: ``shared_buffers``, ``max_connections``, ``wal_level``…) needs a reboot that no update of ferry's triggers.
KNOWN_DYNAMIC = {
    "maintenance_work_mem": "user",
    "synchronous_commit": "user",
    "max_wal_size": "sighup",
    "checkpoint_timeout": "sighup",
    "autovacuum": "sighup",
    "log_min_duration_statement": "superuser",
    "rds.force_ssl": "sighup",  # RDS's own: dynamic (no stock server has it to ask)
}


def _database(**changes: Any) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "Pulumi.qa.yaml").read_text())
    return {**document["config"]["ferry:database"], **changes}


def _migration(**changes: Any) -> dict[str, Any]:
    document = yaml.safe_load((ROOT / "Pulumi.qa.yaml").read_text())
    return {**document["config"]["ferry:migration"], **changes}


#: ``ferry:database`` as the run leaves it: the load class and a replica whose URL the app gets.
LOADED = {
    "loadInstanceClass": LOAD,
    "readReplicas": 2,
    "replicaInstanceClass": REPLICA,
    "replicaConfigVar": REPLICA_VAR,
}


STEPS = ("provision", "switched", "settled", "rolled_back")
CUTOVER = {"provision": "pending", "switched": "switched", "settled": "switched", "rolled_back": "rolled_back"}


def _state(step: str, **database: Any) -> dict[str, Any]:
    """The stack's config for a run's *step* (the table above), with *database* over the qa file's."""
    return {
        "ferry:cutover": CUTOVER[step],
        "ferry:migration": _migration(loading=step == "provision"),
        "ferry:database": _database(**database, settled=step in ("settled", "rolled_back")),
    }


def _declared(step: str, **database: Any) -> Outcome:
    return declared("qa", **_state(step, **database))


def _primary(outcome: Outcome) -> dict[str, Any]:
    found = [r.inputs for r in outcome.of_type(INSTANCE) if "replicateSourceDb" not in r.inputs]
    assert len(found) == 1
    return found[0]


def _replicas(outcome: Outcome) -> list[dict[str, Any]]:
    return [r.inputs for r in outcome.of_type(INSTANCE) if "replicateSourceDb" in r.inputs]


def _parameters(outcome: Outcome) -> dict[str, tuple[str, str]]:
    group = outcome.one(GROUP).inputs
    return {p["name"]: (p["value"], p["applyMethod"]) for p in group["parameters"]}


# ---- the instance class -----------------------------------------------------------------------------------------


def test_the_load_class_is_declared_until_settled_and_the_normal_class_after() -> None:
    classes = {step: _primary(_declared(step, **LOADED))["instanceClass"] for step in STEPS}
    assert classes == {"provision": LOAD, "switched": LOAD, "settled": NORMAL, "rolled_back": NORMAL}
    # Applied at once whenever it changes: the settle's modify is not left for a maintenance window.
    assert all(_primary(_declared(step, **LOADED))["applyImmediately"] is True for step in STEPS)


def test_without_a_load_class_the_instance_keeps_its_class_throughout() -> None:
    assert {_primary(_declared(step))["instanceClass"] for step in STEPS} == {NORMAL}


# ---- the bulk-load parameters and their group -------------------------------------------------------------------


def test_the_bulk_load_parameters_are_there_while_loading_and_gone_from_the_switch_on_applied_at_once() -> None:
    loading = _parameters(_declared("provision", **LOADED))
    assert {name: value for name, (value, _) in loading.items() if name in BULK_LOAD_PARAMETERS} == dict(
        BULK_LOAD_PARAMETERS
    )
    for step in ("switched", "settled", "rolled_back"):
        after = _parameters(_declared(step, **LOADED))
        assert set(after) == set(_ALWAYS_PARAMETERS), step  # synchronous_commit, autovacuum… back to RDS's
    for step in STEPS:
        # Every parameter dynamic and applied at once: no reboot owed, nothing pending after the update.
        assert {method for _, method in _parameters(_declared(step, **LOADED)).values()} == {"immediate"}


def test_every_parameter_ferry_sets_is_a_dynamic_one() -> None:
    """``apply_method: immediate`` takes effect only for a dynamic parameter (RDS refuses it for a static one,
    whose change waits for a reboot nothing triggers): the switch's update could not end the profile."""
    for name in BULK_LOAD_PARAMETERS:
        assert name in KNOWN_DYNAMIC, f"{name}: not known to be dynamic (a static one needs a reboot)"
    for name in _ALWAYS_PARAMETERS:
        assert name in KNOWN_DYNAMIC, f"{name}: not known to be dynamic"


def test_the_known_dynamic_parameters_are_so_on_a_real_server(target_cluster: Cluster) -> None:
    import psycopg

    stock = sorted(name for name in KNOWN_DYNAMIC if not name.startswith("rds."))
    with psycopg.connect(target_cluster.url(), autocommit=True) as conn:
        contexts = dict(conn.execute("SELECT name, context FROM pg_settings WHERE name = ANY(%s)", (stock,)).fetchall())
        assert conn.execute("SELECT context FROM pg_settings WHERE name = 'shared_buffers'").fetchone() == (
            "postmaster",  # what a static one looks like, which KNOWN_DYNAMIC must never hold
        )
    assert contexts == {name: KNOWN_DYNAMIC[name] for name in stock}


def test_the_parameter_group_is_one_resource_across_every_update() -> None:
    """A group replaced by the switch (a changed name prefix, family or description) would be associated anew,
    which RDS applies only at a reboot: its identity is the same in every update, only its parameters change."""
    outcomes = {step: _declared(step, **LOADED) for step in STEPS}
    groups = {step: outcome.one(GROUP) for step, outcome in outcomes.items()}
    identities = {step: {k: v for k, v in group.inputs.items() if k != "parameters"} for step, group in groups.items()}
    assert identities["provision"]["namePrefix"] == "shop-qa-pg15-"
    assert identities["provision"]["family"] == "postgres15"
    assert all(identity == identities["provision"] for identity in identities.values()), identities
    assert {group.name for group in groups.values()} == {"database-parameters"}
    assert {_primary(outcome)["parameterGroupName"] for outcome in outcomes.values()} == {"shop-qa-pg15-0001"}
    assert len({json.dumps(group.inputs["parameters"], sort_keys=True) for group in groups.values()}) == 2


# ---- read replicas ----------------------------------------------------------------------------------------------


def test_replicas_are_declared_only_once_settled_as_read_replicas_of_the_primary() -> None:
    for step in ("provision", "switched"):
        outcome = _declared(step, **LOADED)
        assert _replicas(outcome) == [] and outcome.outputs["databaseReplicaEndpoints"] == []
    settled = _declared("settled", **LOADED)
    primary = _primary(settled)
    replicas = sorted(_replicas(settled), key=lambda replica: str(replica["identifier"]))  # registered in any order
    assert [r["identifier"] for r in replicas] == ["shop-qa-replica-1", "shop-qa-replica-2"]
    for replica in replicas:
        assert replica["replicateSourceDb"] == primary["identifier"] == "shop-qa"
        assert replica["instanceClass"] == REPLICA
        assert replica["parameterGroupName"] == primary["parameterGroupName"]
        assert replica["vpcSecurityGroupIds"] == primary["vpcSecurityGroupIds"]
        assert replica["publiclyAccessible"] is primary["publiclyAccessible"] is False
        # Encrypted with the primary's key, inherited: RDS refuses a key given for a same-region replica.
        assert replica["storageEncrypted"] is True and "kmsKeyId" not in replica
        assert "username" not in replica and "password" not in replica and "dbSubnetGroupName" not in replica
        assert replica["backupRetentionPeriod"] == 0 and replica["skipFinalSnapshot"] is True
    assert settled.outputs["databaseReplicaEndpoints"] == [
        "shop-qa-replica-1.c0ffee.us-east-1.rds.amazonaws.com",
        "shop-qa-replica-2.c0ffee.us-east-1.rds.amazonaws.com",
    ]
    assert all(r.parents[-1] == "ferry:stacks:Database" for r in settled.of_type(INSTANCE))
    # A rollback after the settle leaves the database as it is.
    assert len(_replicas(_declared("rolled_back", **LOADED))) == 2


def test_replicas_are_of_the_instance_class_unless_told_and_public_only_with_the_primary() -> None:
    replicas = _replicas(_declared("settled", readReplicas=1))
    assert [r["instanceClass"] for r in replicas] == [NORMAL]
    ci = yaml.safe_load((ROOT / "Pulumi.ci.yaml").read_text())["config"]
    public = declared("ci", **{"ferry:database": {**ci["ferry:database"], "readReplicas": 1, "settled": True}})
    assert _primary(public)["publiclyAccessible"] is True
    assert [r["publiclyAccessible"] for r in _replicas(public)] == [True]


def _switched_vars(outcome: Outcome) -> dict[str, Any]:
    return dict(secret_value(outcome.one(CONFIG).inputs["sensitiveVars"]))


def test_the_replica_url_is_a_switched_variable_only_once_settled() -> None:
    assert REPLICA_VAR not in _switched_vars(_declared("switched", **LOADED))
    settled = _switched_vars(_declared("settled", **LOADED))
    url = settled[REPLICA_VAR]
    # The first database's read-only role, on the first replica.
    assert url.startswith("postgres://shop_readonly:")
    assert url.endswith("@shop-qa-replica-1.c0ffee.us-east-1.rds.amazonaws.com:5432/shop?sslmode=require")
    # Kept for the rollback like a bucket's variable: the app had none, so the rollback unsets it.
    assert json.loads(settled[ROLLBACK_VAR])["vars"][REPLICA_VAR] is None
    # Without a config variable named, the app gets nothing, replicas or not.
    assert not [var for var in _switched_vars(_declared("settled", readReplicas=1)) if "REPLICA" in var]


def test_a_rollback_after_the_settle_unsets_the_replica_url_and_puts_an_old_value_back() -> None:
    def app_after_settle(old: str | None) -> dict[str, str]:
        before = {"DATABASE_URL": "postgres://old", **({REPLICA_VAR: old} if old else {})}
        config = stack_config("qa", _state("settled", **LOADED))
        switched = _switched_vars(run_program("qa", config, app_config_vars=before))
        return {**before, **switched}

    for old in (None, "postgres://heroku-follower/shop"):
        app = app_after_settle(old)
        assert json.loads(app[ROLLBACK_VAR])["vars"][REPLICA_VAR] == old
        rolled_back = run_program("qa", stack_config("qa", _state("rolled_back", **LOADED)), app_config_vars=app)
        restored = _switched_vars(rolled_back)
        assert ROLLBACK_VAR not in restored
        if old is None:
            assert REPLICA_VAR not in restored  # unset
        else:
            assert restored[REPLICA_VAR] == old


# ---- the stack file ---------------------------------------------------------------------------------------------


def _load(tmp_path: Path, **database: Any) -> Any:
    document = yaml.safe_load((ROOT / "Pulumi.qa.yaml").read_text())
    document["config"]["ferry:database"] = _database(**database)
    (tmp_path / "Pulumi.qa.yaml").write_text(yaml.safe_dump(document))
    return load_stack_file(tmp_path, "qa")


@pytest.mark.parametrize(
    ("database", "message"),
    [
        ({"readReplicas": 6}, "ferry:database.readReplicas: Input should be less than or equal to 5"),
        ({"readReplicas": -1}, "ferry:database.readReplicas: Input should be greater than or equal to 0"),
        ({"readReplicas": 1, "replicaConfigVar": "database_replica_url"}, "is not a config variable name"),
        ({"readReplicas": 1, "replicaConfigVar": "DATABASE_URL"}, "names DATABASE_URL, which the cutover sets"),
        ({"readReplicas": 1, "replicaConfigVar": "REDIS_URL"}, "names REDIS_URL, which the cutover sets"),
        ({"readReplicas": 1, "replicaConfigVar": "HEROKU_POSTGRES_DB_URL"}, "names HEROKU_POSTGRES_DB_URL"),
        ({"readReplicas": 1, "replicaConfigVar": ROLLBACK_VAR}, f"names {ROLLBACK_VAR}"),
        ({"readReplicas": 1, "replicaConfigVar": "S3_BUCKET"}, "names S3_BUCKET"),  # a moved bucket's
        ({"replicaConfigVar": REPLICA_VAR}, "replicaConfigVar is for read replicas: it needs readReplicas"),
        ({"replicaInstanceClass": REPLICA}, "replicaInstanceClass is for read replicas"),
    ],
)
def test_bad_replica_settings_are_refused_in_one_line(tmp_path: Path, database: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, **database)
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert str(raised.value).startswith("Pulumi.qa.yaml: ")


def test_the_settled_flag_reads_as_pulumi_config_set_path_writes_it(tmp_path: Path) -> None:
    """``pulumi config set --path ferry:database.settled true`` may leave a string: it reads as true all the same."""
    assert _load(tmp_path, settled="true", **LOADED).database.settled is True
    loaded = _load(tmp_path, **LOADED).database
    assert (loaded.settled, loaded.current_instance_class, loaded.declared_replicas) == (False, LOAD, 0)
    settled = _load(tmp_path, settled=True, **LOADED).database
    assert (settled.current_instance_class, settled.declared_replicas, settled.replica_class) == (NORMAL, 2, REPLICA)


def test_the_production_example_loads_on_its_load_class_and_settles_with_a_replica() -> None:
    example = yaml.safe_load((ROOT / "Pulumi.production.yaml").read_text())["config"]["ferry:database"]
    loading = declared("production")
    assert _primary(loading)["instanceClass"] == example["loadInstanceClass"] == "db.r7g.4xlarge"
    assert _replicas(loading) == []
    settled = declared("production", **{"ferry:database": {**example, "settled": True}})
    assert _primary(settled)["instanceClass"] == example["instanceClass"] == "db.r7g.xlarge"
    assert [r["instanceClass"] for r in _replicas(settled)] == ["db.r7g.xlarge"]
    assert [r["identifier"] for r in _replicas(settled)] == ["shop-production-replica-1"]
