"""Several moves under mocks: each move's cutover declared at its own step, on its own app, with its own URL."""

from __future__ import annotations

from typing import Any

from tests.stacks.outcomes import declared, secret_value

ATTACHMENT = "heroku:addon/attachment:Attachment"
DETACHMENT = "pulumi-python:dynamic:Resource"
CONFIG = "heroku:app/configAssociation:ConfigAssociation"

MOVES: list[dict[str, Any]] = [
    {"name": "shop", "database": "shop", "databaseAddon": "postgresql-a", "cutover": "switched"},
    {"name": "analytics", "database": "analytics", "databaseAddon": "postgresql-c",
     "databaseConfigVar": "HEROKU_POSTGRESQL_ONYX_URL", "cutover": "switched"},
    {"name": "blog", "app": "blog-qa", "database": "blog", "databaseAddon": "postgresql-b", "cutover": "aliased"},
]  # fmt: skip


def _declared(moves: list[dict[str, Any]]) -> Any:
    return declared(
        "qa",
        **{
            "ferry:heroku": {"app": "shop-qa"},
            "ferry:database": {"instanceClass": "db.t4g.micro", "databases": ["shop", "analytics", "blog"]},
            "ferry:migration": {"capture": True, "redis": False, "s3": False},
            "ferry:moves": moves,
        },
    )


def test_each_move_switches_its_own_variable_on_its_own_app_at_its_own_step() -> None:
    outcome = _declared(MOVES)
    urls = outcome.outputs["databaseUrls"]
    configs = {next(iter(secret_value(c.inputs["sensitiveVars"]))): c for c in outcome.of_type(CONFIG)}
    assert set(configs) == {"DATABASE_URL", "HEROKU_POSTGRESQL_ONYX_URL"}  # blog is only aliased
    assert secret_value(configs["DATABASE_URL"].inputs["sensitiveVars"]) == {"DATABASE_URL": urls["shop"]}
    assert secret_value(configs["HEROKU_POSTGRESQL_ONYX_URL"].inputs["sensitiveVars"]) == {
        "HEROKU_POSTGRESQL_ONYX_URL": urls["analytics"]
    }
    assert {c.inputs["appId"] for c in configs.values()} == {"uuid-shop-qa"}
    detached = {(d.inputs["app"], d.inputs["attachment"]) for d in outcome.of_type(DETACHMENT)}
    assert detached == {("shop-qa", "DATABASE"), ("shop-qa", "HEROKU_POSTGRESQL_ONYX")}
    attached = {(a.inputs["appId"], a.inputs["name"]) for a in outcome.of_type(ATTACHMENT)}
    assert attached == {
        ("uuid-shop-qa", "OLD_DATABASE"),
        ("uuid-shop-qa", "OLD_HEROKU_POSTGRESQL_ONYX"),
        ("uuid-blog-qa", "OLD_DATABASE"),
    }


def test_a_move_still_pending_declares_nothing_on_heroku() -> None:
    outcome = _declared([{**move, "cutover": "pending"} for move in MOVES])
    assert not outcome.of_type(ATTACHMENT) and not outcome.of_type(DETACHMENT) and not outcome.of_type(CONFIG)
    assert set(outcome.outputs["databaseUrls"]) == {"shop", "analytics", "blog"}


def test_a_rolled_back_move_puts_its_own_attachment_back_and_leaves_the_others_switched() -> None:
    moves = [MOVES[0], {**MOVES[1], "cutover": "rolled_back"}, MOVES[2]]
    outcome = _declared(moves)
    attached = {(a.inputs["appId"], a.inputs["name"]) for a in outcome.of_type(ATTACHMENT)}
    assert ("uuid-shop-qa", "HEROKU_POSTGRESQL_ONYX") in attached  # back under its own name
    assert ("uuid-shop-qa", "DATABASE") not in attached  # shop stays switched
    detached = {(d.inputs["app"], d.inputs["attachment"]) for d in outcome.of_type(DETACHMENT)}
    assert detached == {("shop-qa", "DATABASE")}
