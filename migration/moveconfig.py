"""``ferry:moves``: several databases (apps) into one stack's stores, one move and one freeze at a time.

A move is run as a stack of that move alone would be (:func:`for_move`): its app, its add-ons and config
variables, its target database first among the stack's, its cutover step kept at ``ferry:moves[i].cutover``.
Light like :mod:`migration.stackconfig`, which re-exports what is public here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import field_validator, model_validator

from migration.configmodel import Model as _Model
from migration.errors import ConfigError

if TYPE_CHECKING:
    from migration.stackconfig import StackConfig

__all__ = [
    "CUTOVER_STATES",
    "CutoverState",
    "HerokuConfig",
    "MoveConfig",
    "MovedAddon",
    "check_moves",
    "cutover_key",
    "for_move",
    "groups_of",
    "heroku_of",
    "move_names",
]

CutoverState = Literal["pending", "aliased", "switched", "rolled_back"]
CUTOVER_STATES: tuple[CutoverState, ...] = ("pending", "aliased", "switched", "rolled_back")


@dataclass(frozen=True)
class MovedAddon:
    """One add-on the app leaves: ``DATABASE`` → ``DATABASE_URL``, or ``REDIS`` → ``REDIS_URL``.

    :param addon: the old add-on's name or id.
    :param attachment: the attachment name the app uses it under.
    :param rollback_alias: the name it stays attached under after the switch.
    """

    addon: str
    attachment: str
    rollback_alias: str

    @property
    def config_var(self) -> str:
        return f"{self.attachment}_URL"


def _attachment_alias(alias: str) -> str:
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*", alias) or alias in ("DATABASE", "REDIS"):
        raise ValueError(f"{alias!r} is not a usable attachment name (upper case, not DATABASE or REDIS)")
    return alias


def _url_var(name: str) -> str:
    """An add-on's config variable: its attachment's name and ``_URL`` (Heroku sets no other)."""
    if not re.fullmatch(r"[A-Z][A-Z0-9_]*_URL", name):
        raise ValueError(f"{name!r} is not an add-on's config variable (upper case, ending in _URL)")
    return name


class HerokuConfig(_Model):
    """The app being moved and the add-ons it leaves behind (with ``moves``: the app they default to)."""

    app: str
    #: Required unless the stack file lists ``moves`` (each names its own add-ons).
    database_addon: str | None = None
    redis_addon: str | None = None
    rollback_alias: str = "HEROKU_POSTGRES_DB"
    redis_rollback_alias: str = "HEROKU_REDIS_OLD"
    #: The variable the app reads the database from (``DATABASE_URL``, or ``HEROKU_POSTGRESQL_ONYX_URL``).
    database_config_var: str = "DATABASE_URL"
    redis_config_var: str = "REDIS_URL"

    _alias = field_validator("rollback_alias", "redis_rollback_alias")(_attachment_alias)
    _var = field_validator("database_config_var", "redis_config_var")(_url_var)


class MoveConfig(_Model):
    """One move of ``ferry:moves``: an app's database (and Redis, buckets) moved and switched in one freeze.

    Moves run one after the other, each with its own freeze, final sync, verify, alias and switch; several
    databases go into the one instance under the stack's names (``database.databases``).
    """

    name: str
    #: The Heroku app whose variables switch (default: ``heroku.app``).
    app: str | None = None
    #: Target database on the stack's instance (one of ``database.databases``).
    database: str | None = None
    database_addon: str | None = None
    database_config_var: str = "DATABASE_URL"
    #: Where the old database stays attached after the switch (default ``OLD_<attachment>``).
    rollback_alias: str | None = None
    redis_addon: str | None = None
    redis_config_var: str = "REDIS_URL"
    redis_rollback_alias: str | None = None
    #: This move switches the app's buckets too (at most one move does).
    s3: bool = False
    #: Moves of one app that must switch together: one freeze for all of them (listed next to each other).
    together: str | None = None
    #: The move's step of the cutover (``ferry:cutover`` of a stack without moves); set by ``ferry run``.
    cutover: CutoverState = "pending"

    _var = field_validator("database_config_var", "redis_config_var")(_url_var)

    @field_validator("rollback_alias", "redis_rollback_alias")
    @classmethod
    def _alias(cls, alias: str | None) -> str | None:
        return None if alias is None else _attachment_alias(alias)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,30}", name):
            raise ValueError(f"move name {name!r} must be lower case letters, digits and dashes")
        return name

    @model_validator(mode="after")
    def _complete(self) -> MoveConfig:
        if (self.database is None) != (self.database_addon is None):
            raise ValueError(f"move {self.name}: database and databaseAddon go together (the target and the source)")
        if self.database is None and self.redis_addon is None:
            raise ValueError(f"move {self.name} moves nothing: give database + databaseAddon, or redisAddon")
        return self


def check_moves(config: StackConfig) -> None:
    """The moves fit together and with the stack's stores. :raises ValueError: they do not."""
    names = [move.name for move in config.moves]
    if config.heroku.database_addon or config.heroku.redis_addon:
        raise ValueError("with ferry:moves, each move names its add-ons: leave heroku.databaseAddon/redisAddon out")
    if len(set(names)) < len(names):
        raise ValueError(f"moves: two moves are named {next(n for n in names if names.count(n) > 1)}")
    targets = [move.database for move in config.moves if move.database]
    for move in config.moves:
        if move.database is not None and move.database not in config.database.databases:
            raise ValueError(f"moves.{move.name}: database {move.database} is not in database.databases")
        if move.database is not None and targets.count(move.database) > 1:
            raise ValueError(f"moves: two moves go into database {move.database}")
        if move.database is None and config.migration.freeze == "fence":
            raise ValueError(f"moves.{move.name}: moves no database, and the fence is a database's (freeze)")
    addons = [addon for move in config.moves for addon in (move.database_addon, move.redis_addon) if addon]
    if len(set(addons)) < len(addons):
        twice = next(addon for addon in addons if addons.count(addon) > 1)
        raise ValueError(f"moves: add-on {twice} is moved twice (each add-on is one move's source)")
    _check_groups(config)
    redis_moves = [move.name for move in config.moves if move.redis_addon]
    if redis_moves and config.cache is None:
        raise ValueError(f"moves.{redis_moves[0]} moves Redis, and the stack declares no cache")
    if len(redis_moves) > 1:
        # Each would empty the one cache the other filled.
        raise ValueError(f"moves: {' and '.join(redis_moves[:2])} both move Redis into the stack's one cache")
    if config.migration.redis != bool(redis_moves):
        raise ValueError("migration.redis says whether Redis moves: with moves, set it when a move has redisAddon")
    s3_moves = [move.name for move in config.moves if move.s3]
    if len(s3_moves) > 1:
        raise ValueError(f"moves: {' and '.join(s3_moves[:2])} both switch the buckets (s3: true on one move)")
    if config.migration.s3 != bool(s3_moves):
        raise ValueError("migration.s3 says whether the buckets move: with moves, give one move s3: true")
    seen: dict[tuple[str, str], str] = {}
    for move in config.moves:
        app, view = move.app or config.heroku.app, heroku_of(config, move)
        used = [view.database_config_var, f"{view.rollback_alias}_URL"] if move.database else []
        used += [view.redis_config_var, f"{view.redis_rollback_alias}_URL"] if move.redis_addon else []
        for var in used:
            if (app, var) in seen:
                raise ValueError(f"moves: {seen[(app, var)]} and {move.name} both use {var} of app {app}")
            seen[(app, var)] = move.name


def _check_groups(config: StackConfig) -> None:
    """Moves switched together: next to each other, of one app, behind a freeze that leaves the app running."""
    groups: dict[str, list[MoveConfig]] = {}
    previous = None
    for move in config.moves:
        if move.together is not None:
            if move.together in groups and previous != move.together:
                raise ValueError(f"moves: the moves together as {move.together} must be listed next to each other")
            groups.setdefault(move.together, []).append(move)
        previous = move.together
    for name, members in groups.items():
        apps = {move.app or config.heroku.app for move in members}
        if len(apps) > 1:
            raise ValueError(f"moves: together {name} holds moves of {' and '.join(sorted(apps))}: one app's only")
        if config.migration.freeze == "maintenance":
            # Each move's freeze would keep the formation the one before had already scaled down.
            raise ValueError(f"moves: together {name} shares one freeze: it needs migration.freeze fence or read-only")


def groups_of(config: StackConfig) -> list[list[str]]:
    """The moves in the order they run, those switched together in one list."""
    runs: list[list[str]] = []
    for move in config.moves:
        if move.together is not None and runs and runs[-1][0] in _together(config, move.together):
            runs[-1].append(move.name)
        else:
            runs.append([move.name])
    return runs


def _together(config: StackConfig, group: str) -> set[str]:
    return {move.name for move in config.moves if move.together == group}


def heroku_of(config: StackConfig, move: MoveConfig) -> HerokuConfig:
    """The ``heroku`` section a stack of this one move alone would have."""
    database_attachment = move.database_config_var.removesuffix("_URL")
    redis_attachment = move.redis_config_var.removesuffix("_URL")
    return HerokuConfig(
        app=move.app or config.heroku.app,
        database_addon=move.database_addon,
        redis_addon=move.redis_addon,
        database_config_var=move.database_config_var,
        redis_config_var=move.redis_config_var,
        rollback_alias=move.rollback_alias or f"OLD_{database_attachment}",
        redis_rollback_alias=move.redis_rollback_alias or f"OLD_{redis_attachment}",
    )


def move_names(config: StackConfig) -> list[str]:
    """The moves in the order they run (empty: the stack has the one move ``heroku`` describes)."""
    return [move.name for move in config.moves]


def for_move(config: StackConfig, name: str) -> StackConfig:
    """This stack as one move of it sees it: its app and add-ons, its target database first, its stores.

    :raises ConfigError: the stack lists no move *name*.
    """
    found = next((move for move in config.moves if move.name == name), None)
    if found is None:
        known = ", ".join(move_names(config)) or "none: the stack file lists no ferry:moves"
        raise ConfigError(f"stack {config.stack} has no move {name!r} (its moves: {known})")
    databases = [db for db in config.database.databases if db != found.database]
    migration = config.migration.model_copy(
        update={"postgres": found.database is not None, "redis": found.redis_addon is not None, "s3": found.s3}
    )
    return config.model_copy(
        update={
            "heroku": heroku_of(config, found),
            "database": config.database.model_copy(
                update={"databases": ([found.database] if found.database else []) + databases}
            ),
            "migration": migration,
            "cutover": found.cutover,
            "move": found.name,
        }
    )


def cutover_key(config: StackConfig) -> str:
    """The config key of this view's cutover step: ``cutover``, or its move's ``moves[i].cutover``."""
    if config.move is None:
        return "cutover"
    return f"moves[{move_names(config).index(config.move)}].cutover"
