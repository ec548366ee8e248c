"""``ferry:moves``: what a stack file of several moves may say, and each move's view of the stack."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from migration.errors import ConfigError
from migration.stackconfig import load_stack_file

BASE: dict[str, Any] = {
    "aws:region": "us-east-1",
    "ferry:app": "shop",
    "ferry:heroku": {"app": "shop-qa"},
    "ferry:network": {"availabilityZones": ["us-east-1a", "us-east-1b"], "allowedCidrs": ["10.0.0.0/16"]},
    "ferry:reach": {"app": "vpc"},
    "ferry:database": {"instanceClass": "db.t4g.micro", "databases": ["shop", "blog", "analytics"]},
    "ferry:cache": {"nodeType": "cache.t4g.micro", "replicas": 0},
    "ferry:migration": {"capture": True},
}
MOVES: list[dict[str, Any]] = [
    {"name": "shop", "database": "shop", "databaseAddon": "postgresql-a"},
    {"name": "blog", "app": "blog-qa", "database": "blog", "databaseAddon": "postgresql-b"},
    {"name": "analytics", "database": "analytics", "databaseAddon": "postgresql-c",
     "databaseConfigVar": "HEROKU_POSTGRESQL_ONYX_URL"},
]  # fmt: skip


def _load(tmp_path: Path, **changes: Any) -> Any:
    config = {**BASE, "ferry:moves": MOVES, **changes}
    (tmp_path / "Pulumi.qa.yaml").write_text(yaml.safe_dump({"config": config}))
    return load_stack_file(tmp_path, "qa")


def test_each_move_sees_the_stack_as_if_it_were_the_only_one(tmp_path: Path) -> None:
    config = _load(tmp_path)
    assert config.move_names() == ["shop", "blog", "analytics"]
    blog = config.for_move("blog")
    assert blog.heroku.app == "blog-qa" and blog.heroku.database_addon == "postgresql-b"
    assert blog.database.databases == ["blog", "shop", "analytics"]  # its target first
    assert blog.cutover_key() == "moves[1].cutover"
    analytics = config.for_move("analytics")
    (addon,) = analytics.moved_addons()
    assert addon.config_var == "HEROKU_POSTGRESQL_ONYX_URL" and addon.attachment == "HEROKU_POSTGRESQL_ONYX"
    assert addon.rollback_alias == "OLD_HEROKU_POSTGRESQL_ONYX" and analytics.heroku.app == "shop-qa"
    assert not analytics.migration.redis and analytics.migration.postgres
    assert config.cutover_key() == "cutover"


def test_a_moves_cutover_step_is_its_own(tmp_path: Path) -> None:
    moves = [{**MOVES[0], "cutover": "switched"}, MOVES[1], MOVES[2]]
    config = _load(tmp_path, **{"ferry:moves": moves})
    assert config.for_move("shop").cutover == "switched" and config.for_move("blog").cutover == "pending"
    assert config.cutover == "pending"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ferry:moves": [*MOVES, {**MOVES[0], "database": "blog"}]}, "two moves are named shop"),
        ({"ferry:moves": [{**MOVES[0], "database": "nope"}]}, "database nope is not in database.databases"),
        ({"ferry:moves": [MOVES[0], {**MOVES[1], "name": "b2", "app": None, "database": "shop"}]},
         "two moves go into database shop"),
        ({"ferry:moves": [MOVES[0], {**MOVES[2], "databaseConfigVar": "DATABASE_URL"}]},
         "shop and analytics both use DATABASE_URL of app shop-qa"),
        ({"ferry:moves": [{**MOVES[0], "databaseAddon": None}]}, "database and databaseAddon go together"),
        ({"ferry:moves": [{**MOVES[0], "together": "x"}, {**MOVES[1], "together": "x"}]},
         "together x holds moves of blog-qa and shop-qa"),
        ({"ferry:moves": [{**MOVES[0], "together": "x"}, MOVES[1], {**MOVES[2], "together": "x"}]},
         "must be listed next to each other"),
        ({"ferry:moves": [{**MOVES[0], "together": "x"}, {**MOVES[2], "together": "x"}],
          "ferry:migration": {"capture": True, "freeze": "maintenance"}}, "needs migration.freeze fence or read-only"),
        ({"ferry:moves": [MOVES[0], {**MOVES[1], "databaseAddon": "postgresql-a"}]},
         "add-on postgresql-a is moved twice"),
        ({"ferry:moves": [{"name": "empty"}]}, "move empty moves nothing"),
        ({"ferry:moves": [{**MOVES[0], "name": "Shop"}]}, "must be lower case"),
        ({"ferry:moves": [{**MOVES[0], "databaseConfigVar": "DATABASE"}]}, "ending in _URL"),
        ({"ferry:heroku": {"app": "shop-qa", "databaseAddon": "postgresql-a"}}, "each move names its add-ons"),
        ({"ferry:moves": [{**MOVES[0], "redisAddon": "redis-a"}, {**MOVES[1], "redisAddon": "redis-b"}],
          "ferry:migration": {"capture": True, "redis": True}}, "shop and blog both move Redis"),
        ({"ferry:moves": [{**MOVES[0], "redisAddon": "redis-a"}]}, "set it when a move has redisAddon"),
        ({"ferry:moves": [{**MOVES[0], "s3": True}]}, "give one move s3: true"),
        ({"ferry:moves": [{"name": "cache", "redisAddon": "redis-a"}],
          "ferry:migration": {"capture": True, "redis": True}}, "moves no database, and the fence"),
    ],
)  # fmt: skip
def test_moves_that_do_not_fit_are_refused_in_one_line(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        _load(tmp_path, **change)
    assert "\n" not in str(raised.value)


def test_an_unknown_move_is_named_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no move 'nope' \\(its moves: shop, blog, analytics\\)"):
        _load(tmp_path).for_move("nope")


def test_a_stack_without_moves_still_needs_its_database_addon(tmp_path: Path) -> None:
    config = {**BASE}
    (tmp_path / "Pulumi.qa.yaml").write_text(yaml.safe_dump({"config": config}))
    with pytest.raises(ConfigError, match=r"heroku\.databaseAddon is required"):
        load_stack_file(tmp_path, "qa")


def test_move_is_no_setting_a_stack_file_may_give(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ferry:move is not a known setting"):
        _load(tmp_path, **{"ferry:move": "shop"})


def test_moves_together_run_as_one_group_in_their_place(tmp_path: Path) -> None:
    from migration.moveconfig import groups_of

    moves = [{**MOVES[0], "together": "shop"}, {**MOVES[2], "together": "shop"}, MOVES[1]]
    assert groups_of(_load(tmp_path, **{"ferry:moves": moves})) == [["shop", "analytics"], ["blog"]]
    assert groups_of(_load(tmp_path)) == [["shop"], ["blog"], ["analytics"]]


def test_each_moves_settings_name_its_own_state_and_database(tmp_path: Path) -> None:
    from migration.errors import UsageError
    from migration.runbook import RunSettings
    from migration.runbook.moves import for_move

    config = _load(tmp_path)
    base = RunSettings(stack="qa", root=tmp_path, state_dir=tmp_path / "state",
                       target_url="postgresql://u:p@h:5432/postgres?sslmode=require&dbname=postgres")  # fmt: skip
    blog = for_move(base, config, "blog")
    assert blog.state_dir == tmp_path / "state" / "moves" / "blog" and blog.move == "blog" and not blog.last_move
    assert blog.target_url == "postgresql://u:p@h:5432/blog?sslmode=require&dbname=blog"
    assert for_move(base, config, "analytics").last_move
    with pytest.raises(UsageError, match=r"--runner ecs moves only into the first of database\.databases"):
        for_move(replace(base, runner="ecs"), config, "blog")
    assert for_move(replace(base, runner="ecs"), config, "shop").move == "shop"
    with pytest.raises(UsageError, match="must be a postgres:// URL"):
        for_move(replace(base, target_url="host=h dbname=postgres"), config, "shop")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # libpq takes dbname= over the path: it names the move's database too (else every move went into one).
        ("postgresql://u:p@h/postgres?dbname=postgres", "postgresql://u:p@h/blog?dbname=blog"),
        # No host in the authority: the "//" stays (urlunsplit dropped it: "postgresql:/blog?host=…").
        ("postgresql:///postgres?host=127.0.0.1&port=5433", "postgresql:///blog?host=127.0.0.1&port=5433"),
        ("postgres://u:p@h:5432", "postgres://u:p@h:5432/blog"),
    ],
)
def test_a_target_url_takes_each_moves_database_in_every_spelling(tmp_path: Path, given: str, expected: str) -> None:
    from migration.runbook import RunSettings
    from migration.runbook.moves import for_move

    base = RunSettings(stack="qa", root=tmp_path, state_dir=tmp_path, target_url=given, target_app_url=given)
    blog = for_move(base, _load(tmp_path), "blog")
    assert blog.target_url == blog.target_app_url == expected
