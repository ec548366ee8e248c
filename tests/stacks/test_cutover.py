"""The cutover under mocks: what each ``ferry:cutover`` value declares on Heroku, the moved buckets' variables
the switch sets and the rollback puts back (kept on the app in ``FERRY_ROLLBACK_CONFIG``), and the app user's
key pair."""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pytest
from pulumi.runtime.mocks import MockMonitor, MockResourceArgs

from migration.platform.rollbackvars import ROLLBACK_VAR
from stacks.config import CUTOVER_STATES
from tests.stacks.outcomes import declared, secret_value
from tests.support.pulumi_program import Outcome, _Recorder, run_program, stack_config

ATTACHMENT = "heroku:addon/attachment:Attachment"
DETACHMENT = "pulumi-python:dynamic:Resource"
CONFIG = "heroku:app/configAssociation:ConfigAssociation"
ACCESS_KEY = "aws:iam/accessKey:AccessKey"
APP_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def _heroku_side(outcome: Outcome) -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    for resource in outcome.resources:
        if resource.type == ATTACHMENT:
            found.add(("attach", resource.inputs["addonId"], resource.inputs["name"]))
        elif resource.type == DETACHMENT:
            found.add(("detach", resource.inputs["addon"], resource.inputs["attachment"]))
        elif resource.type == CONFIG:
            found.add(("config", *sorted(resource.inputs.get("sensitiveVars", {}).get("value", {}))))
        elif resource.type.startswith("heroku:") and "space" not in resource.type:
            found.add(("other", resource.type))
    return found


PG, REDIS = "postgresql-angular-22221", "redis-spherical-22222"
ALIASES = {("attach", f"addon-{PG}", "HEROKU_POSTGRES_DB"), ("attach", f"addon-{REDIS}", "HEROKU_REDIS_OLD")}
EXPECTED_HEROKU = {
    "pending": set(),
    # While the app is live: it keeps its attachments and its DATABASE_URL.
    "aliased": ALIASES,
    "switched": ALIASES
    | {
        ("detach", PG, "DATABASE"),
        ("detach", REDIS, "REDIS"),
        (
            "config",
            "AWS_ACCESS_KEY_ID",
            "AWS_REGION",
            "AWS_SECRET_ACCESS_KEY",
            "DATABASE_URL",
            "EXPORTS_BUCKET",
            ROLLBACK_VAR,
            "REDIS_URL",
            "S3_BUCKET",
        ),
    },
    "rolled_back": ALIASES
    | {("config",), ("attach", f"addon-{PG}", "DATABASE"), ("attach", f"addon-{REDIS}", "REDIS")},
}


@pytest.mark.parametrize("state", CUTOVER_STATES)
def test_each_cutover_value_declares_exactly_its_heroku_resources(state: str) -> None:
    outcome = declared("qa", **{"ferry:cutover": state})
    assert _heroku_side(outcome) == EXPECTED_HEROKU[state]
    assert outcome.outputs["cutover"] == state
    if state == "switched":
        config = outcome.one(CONFIG).inputs
        assert config["appId"] == "uuid-shop-qa"
        switched = secret_value(config["sensitiveVars"])
        assert switched["DATABASE_URL"] == declared("qa").outputs["databaseUrls"]["shop"]
        assert switched["S3_BUCKET"] == "shop-qa-uploads" and switched["EXPORTS_BUCKET"] == "shop-qa-exports"
        assert switched["AWS_REGION"] == "us-east-1"


@pytest.mark.parametrize(
    ("stack", "aliases"),
    [
        ("ci", {"HEROKU_POSTGRES_DB"}),  # its Redis stays on Heroku: nothing to keep an alias of
        ("qa", {"HEROKU_POSTGRES_DB", "HEROKU_REDIS_OLD"}),
        ("production", {"HEROKU_POSTGRES_DB", "HEROKU_REDIS_OLD"}),
    ],
)
def test_aliased_attaches_the_alias_and_detaches_nothing(stack: str, aliases: set[str]) -> None:
    outcome = declared(stack, **{"ferry:cutover": "aliased"})
    assert not outcome.of_type(DETACHMENT) and not outcome.of_type(CONFIG)
    assert {a.inputs["name"] for a in outcome.of_type(ATTACHMENT)} == aliases


def test_app_role_picks_the_role_database_url_connects_as() -> None:
    def switched_url(app_role: str) -> str:
        outcome = declared(
            "qa", **{"ferry:cutover": "switched", "ferry:migration": {"redis": True, "appRole": app_role}}
        )
        config = outcome.one(CONFIG).inputs
        return str(secret_value(config["sensitiveVars"])["DATABASE_URL"])

    assert switched_url("app").startswith("postgres://shop_app:")
    assert switched_url("owner").startswith("postgres://shop_owner:")


def test_redis_and_buckets_stay_on_heroku_when_not_moved() -> None:
    outcome = declared("qa", **{"ferry:cutover": "switched", "ferry:migration": {"redis": False, "s3": False}})
    assert ("config", "DATABASE_URL") in _heroku_side(outcome)
    assert not any(item[-1] in ("REDIS", "HEROKU_REDIS_OLD") for item in _heroku_side(outcome))


def test_buckets_found_without_config_vars_get_none_set() -> None:
    storage = {"buckets": [{"name": "uploads", "source": "shop-qa-uploads-heroku"}], "appUser": "shop-qa-app"}
    outcome = declared("qa", **{"ferry:cutover": "switched", "ferry:storage": {**storage, "bucketsByConfig": False}})
    assert ("config", "DATABASE_URL", "REDIS_URL") in _heroku_side(outcome)


def test_a_bucket_variable_named_like_an_add_ons_url_is_refused() -> None:
    storage = {
        "buckets": [{"name": "uploads", "source": "shop-ci-uploads-heroku", "configVars": {"bucket": "REDIS_URL"}}],
        "appUser": "shop-ci-app",
    }
    with pytest.raises(pulumi.RunError, match="configVars names REDIS_URL, which the cutover sets or keeps itself"):
        run_program("ci", stack_config("ci", {"ferry:storage": storage}))


@pytest.fixture
def key_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """The mocks hand an access key its secret half, as IAM does (the shared mocks echo the inputs only)."""
    original = _Recorder.new_resource

    def new_resource(self: _Recorder, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        id_, outputs = original(self, args)
        return id_, {**outputs, "secret": APP_SECRET} if args.typ == ACCESS_KEY else outputs

    monkeypatch.setattr(_Recorder, "new_resource", new_resource)


@pytest.mark.usefixtures("key_pair")
def test_switched_points_the_moved_bucket_at_the_new_one_with_the_app_users_key_pair() -> None:
    outcome = run_program("ci", stack_config("ci", {"ferry:cutover": "switched"}))
    key = outcome.one(ACCESS_KEY)
    assert key.inputs["user"] == "shop-ci-app" and key.parents[-1] == "ferry:stacks:Storage"
    switched = secret_value(outcome.one(CONFIG).inputs["sensitiveVars"])
    assert set(switched) == {
        "DATABASE_URL",
        "S3_BUCKET",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        ROLLBACK_VAR,
    }
    assert switched["S3_BUCKET"] == outcome.outputs["bucketNames"]["uploads"] == "shop-ci-uploads"
    assert switched["AWS_REGION"] == "us-east-1"
    assert switched["AWS_ACCESS_KEY_ID"] == outcome.outputs["appAccessKeyId"] == "storage-app-key-id"
    assert switched["AWS_SECRET_ACCESS_KEY"] == outcome.outputs["appSecretAccessKey"] == APP_SECRET
    assert {"appAccessKeyId", "appSecretAccessKey"} <= outcome.secret_outputs
    plain = json.dumps({k: v for k, v in outcome.outputs.items() if k not in outcome.secret_outputs})
    assert APP_SECRET not in plain and "storage-app-key-id" not in plain


def _app_in_aws(stack: str) -> dict[str, Any]:
    """*stack* for an app that runs in AWS (``reach.app: vpc``, admitted by a security group) and reaches its
    buckets through its role: what only such an app can do."""
    document = {key: json.loads(value) if value[:1] in "{[" else value for key, value in stack_config(stack).items()}
    network = {**document["ferry:network"], "allowedSecurityGroupIds": ["sg-0e5e5e5e5e5e5e5e5"]}
    storage = {
        **document["ferry:storage"],
        "buckets": [
            {**bucket, "configVars": {"bucket": bucket["configVars"]["bucket"], "region": "AWS_REGION"}}
            for bucket in document["ferry:storage"]["buckets"]
        ],
        "appRole": f"shop-{stack}-app",
    }
    del storage["appUser"]
    return {"ferry:reach": {"app": "vpc"}, "ferry:network": network, "ferry:storage": storage}


@pytest.mark.parametrize("stack", ["qa", "production"])
def test_an_app_role_gets_no_access_key(stack: str) -> None:
    outcome = declared(stack, **{"ferry:cutover": "switched", **_app_in_aws(stack)})
    assert outcome.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert not outcome.of_type(ACCESS_KEY)
    assert not {"appAccessKeyId", "appSecretAccessKey"} & set(outcome.outputs)
    assert not any("ACCESS_KEY" in var for var in secret_value(outcome.one(CONFIG).inputs["sensitiveVars"]))


def test_an_app_user_whose_app_reads_no_keys_gets_none() -> None:
    storage = {
        "buckets": [{"name": "uploads", "source": "shop-ci-uploads-heroku", "configVars": {"bucket": "S3_BUCKET"}}],
        "appUser": "shop-ci-app",
    }
    outcome = declared("ci", **{"ferry:storage": storage})
    assert outcome.of_type("aws:iam/userPolicyAttachment:UserPolicyAttachment")
    assert not outcome.of_type(ACCESS_KEY) and "appSecretAccessKey" not in outcome.outputs


def _record_dependencies(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """(type, name) of each registered resource → the (type, name) of every resource it waits for."""
    found: dict[tuple[str, str], set[tuple[str, str]]] = {}
    original = MockMonitor.RegisterResource

    def register(self: MockMonitor, request: Any) -> Any:
        found[(request.type, request.name)] = {
            (urn.split("::")[2].split("$")[-1], urn.split("::")[3]) for urn in request.dependencies
        }
        return original(self, request)

    monkeypatch.setattr(MockMonitor, "RegisterResource", register)
    return found


@pytest.mark.usefixtures("key_pair")
def test_the_config_set_follows_the_detachments_with_nothing_between(monkeypatch: pytest.MonkeyPatch) -> None:
    waits = _record_dependencies(monkeypatch)
    migration = {**json.loads(stack_config("ci")["ferry:migration"]), "loading": False}  # as the switch ends it
    run_program("ci", stack_config("ci", {"ferry:cutover": "switched", "ferry:migration": migration}))
    detachments = {key for key in waits if key[0] == DETACHMENT}
    assert detachments == {(DETACHMENT, "cutover-database-detached")}  # ci's Redis stays on Heroku
    config = waits[(CONFIG, "cutover-config-vars")]
    assert detachments <= config
    assert [key for key, deps in waits.items() if deps & detachments] == [(CONFIG, "cutover-config-vars")]
    # What the config set waits for besides (the database, the key pair) is there before anything is detached.
    assert (ACCESS_KEY, "storage-app-key") in config and ("aws:rds/instance:Instance", "database") in config
    for detachment in detachments:
        assert config - detachments <= waits[detachment]
    assert (ATTACHMENT, "cutover-heroku_postgres_db") in waits[(DETACHMENT, "cutover-database-detached")]


OLD_CI = {  # what the ci app holds before the switch
    "S3_BUCKET": "shop-ci-uploads-heroku",
    "AWS_ACCESS_KEY_ID": "AKIAOLDKEY",
    "AWS_SECRET_ACCESS_KEY": "old-secret",
    "DATABASE_URL": "postgres://u:p@old/shop",
    "REDIS_URL": "redis://old:6379",
    "SECRET_KEY_BASE": "not-ours",
}


@pytest.mark.usefixtures("key_pair")
def test_switched_keeps_the_old_bucket_values_on_the_app() -> None:
    outcome = run_program("ci", stack_config("ci", {"ferry:cutover": "switched"}), app_config_vars=OLD_CI)
    switched = secret_value(outcome.one(CONFIG).inputs["sensitiveVars"])
    assert json.loads(switched[ROLLBACK_VAR])["vars"] == {
        "S3_BUCKET": "shop-ci-uploads-heroku",
        "AWS_REGION": None,  # the app had none: the rollback unsets it
        "AWS_ACCESS_KEY_ID": "AKIAOLDKEY",
        "AWS_SECRET_ACCESS_KEY": "old-secret",
    }
    # The new values beside it; neither the add-ons' URLs nor a variable the switch leaves alone kept or listed.
    assert switched["S3_BUCKET"] == "shop-ci-uploads" and switched["AWS_SECRET_ACCESS_KEY"] == APP_SECRET
    assert "SECRET_KEY_BASE" not in switched
    assert "old-secret" not in json.dumps([r.inputs for r in outcome.resources if r.type != CONFIG])


@pytest.mark.usefixtures("key_pair")
def test_switched_again_lists_the_kept_values_as_the_app_holds_them() -> None:
    old = {"S3_BUCKET": "shop-ci-uploads-heroku", "AWS_REGION": None}
    kept = json.dumps({"run": "ci@1", "vars": {**old, "AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S"}})
    after_switch = {"S3_BUCKET": "shop-ci-uploads", "AWS_REGION": "us-east-1", ROLLBACK_VAR: kept}
    outcome = run_program("ci", stack_config("ci", {"ferry:cutover": "switched"}), app_config_vars=after_switch)
    switched = secret_value(outcome.one(CONFIG).inputs["sensitiveVars"])
    assert switched[ROLLBACK_VAR] == kept  # not the new values kept as old, nor dropped (and so unset)
    # A keeper that lacks a variable the stack file names since grows by it, with the value the app holds.
    partial = json.dumps({"run": "ci@1", "vars": old})
    app = {**after_switch, ROLLBACK_VAR: partial, "AWS_ACCESS_KEY_ID": "AKIAOLDKEY"}
    outcome = run_program("ci", stack_config("ci", {"ferry:cutover": "switched"}), app_config_vars=app)
    grown = json.loads(secret_value(outcome.one(CONFIG).inputs["sensitiveVars"])[ROLLBACK_VAR])
    assert grown == {"run": "ci@1", "vars": {**old, "AWS_ACCESS_KEY_ID": "AKIAOLDKEY", "AWS_SECRET_ACCESS_KEY": None}}


def test_rolled_back_puts_the_old_bucket_values_back_and_unsets_the_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    waits = _record_dependencies(monkeypatch)
    kept = {
        "S3_BUCKET": "shop-ci-uploads-heroku",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIAOLDKEY",
        "AWS_SECRET_ACCESS_KEY": "old-secret",
        "EXPORTS_BUCKET": None,  # the app had none: unset
        "DATABASE_URL": "postgres://u:p@old/shop",  # the attachment brings it back, and refuses it set
    }
    switched = {
        "S3_BUCKET": "shop-ci-uploads",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "storage-app-key-id",
        "AWS_SECRET_ACCESS_KEY": APP_SECRET,
        "EXPORTS_BUCKET": "shop-ci-exports",
        "DATABASE_URL": "postgres://shop_app:x@new/shop",
        ROLLBACK_VAR: json.dumps({"run": "ci@1", "vars": kept}),
    }
    outcome = run_program("ci", stack_config("ci", {"ferry:cutover": "rolled_back"}), app_config_vars=switched)
    assert secret_value(outcome.one(CONFIG).inputs["sensitiveVars"]) == {
        "S3_BUCKET": "shop-ci-uploads-heroku",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "AKIAOLDKEY",
        "AWS_SECRET_ACCESS_KEY": "old-secret",
    }
    assert not outcome.of_type(DETACHMENT)
    restored = {a.name: a.inputs["name"] for a in outcome.of_type(ATTACHMENT) if a.name.endswith("-restored")}
    assert restored == {"cutover-database-restored": "DATABASE"}
    for name in restored:
        assert (CONFIG, "cutover-config-vars") in waits[(ATTACHMENT, name)]


def test_rolled_back_again_keeps_the_values_it_put_back() -> None:
    # The rollback's update ran (the keeper is gone, the old values are back): running it again must not unset them.
    rolled_back = {"S3_BUCKET": "shop-ci-uploads-heroku", "AWS_SECRET_ACCESS_KEY": "old-secret", "SECRET_KEY_BASE": "x"}
    outcome = run_program("ci", stack_config("ci", {"ferry:cutover": "rolled_back"}), app_config_vars=rolled_back)
    assert secret_value(outcome.one(CONFIG).inputs["sensitiveVars"]) == {
        "S3_BUCKET": "shop-ci-uploads-heroku",
        "AWS_SECRET_ACCESS_KEY": "old-secret",
    }


def test_a_keeper_of_another_shape_is_left_as_it_is() -> None:
    # `ferry rollback` refuses it before this update (tests/e2e/test_run_s3.py); the program unsets nothing.
    odd = {"S3_BUCKET": "shop-ci-uploads", ROLLBACK_VAR: '["not", "ours"]'}
    outcome = run_program("ci", stack_config("ci", {"ferry:cutover": "rolled_back"}), app_config_vars=odd)
    assert secret_value(outcome.one(CONFIG).inputs["sensitiveVars"]) == odd
