"""A local stand-in for the app's platform, used by ``ferry rehearse``.

A directory holds ``config.env`` (the app's config vars, ``KEY=value`` lines), ``maintenance``
(present while maintenance mode is on) and ``formation.json`` (process counts). Attachments
are modelled the way Heroku sets them: an add-on attached as ``X`` is the ``X_URL`` variable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from migration.errors import PlatformError
from migration.files import replace_file
from migration.stackconfig import MovedAddon

__all__ = ["LocalPlatform", "read_env_file", "write_env_file"]


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Replace the file in one step, so a reader never sees half of it; only its owner may read it."""
    replace_file(path, "".join(f"{key}={value}\n" for key, value in values.items()), mode=0o600)


class LocalPlatform:
    """:param directory: where ``config.env``, ``maintenance`` and ``formation.json`` live."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.env_file = directory / "config.env"
        self.maintenance_flag = directory / "maintenance"
        self.formation_file = directory / "formation.json"
        if not self.env_file.is_file():
            raise PlatformError(f"local platform: {self.env_file} does not exist")
        self.description = f"local app in {directory}"

    def config_vars(self) -> dict[str, str]:
        return read_env_file(self.env_file)

    def _update(self, changes: Mapping[str, str | None]) -> None:
        values = self.config_vars()
        for key, value in changes.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        write_env_file(self.env_file, values)

    def set_maintenance(self, on: bool) -> None:
        if on:
            self.maintenance_flag.touch()
        else:
            self.maintenance_flag.unlink(missing_ok=True)

    def formation(self) -> dict[str, int]:
        if not self.formation_file.exists():
            return {}
        return {str(kind): int(count) for kind, count in json.loads(self.formation_file.read_text()).items()}

    def scale(self, counts: Mapping[str, int]) -> None:
        formation = {**self.formation(), **counts}
        replace_file(self.formation_file, json.dumps(formation))

    def alias(self, moves: Sequence[MovedAddon]) -> None:
        values = self.config_vars()
        for move in moves:
            alias_var = f"{move.rollback_alias}_URL"
            if move.config_var in values:
                self._update({alias_var: values[move.config_var], move.config_var: None})
            elif alias_var not in values:
                raise PlatformError(f"local platform: neither {move.config_var} nor {alias_var} is set")

    def switch(self, urls: Mapping[str, str]) -> None:
        self._update(urls)

    def rollback(self, moves: Sequence[MovedAddon]) -> None:
        values = self.config_vars()
        self._update(
            {
                move.config_var: values[f"{move.rollback_alias}_URL"]
                for move in moves
                if f"{move.rollback_alias}_URL" in values
            }
        )

    def close(self) -> None:
        return None
