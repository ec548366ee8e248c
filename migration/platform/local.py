"""A local stand-in for the app's platform, used by ``ferry rehearse``.

A directory holds ``config.env`` (the app's config vars, ``KEY=value`` lines), ``maintenance``
(present while maintenance mode is on) and ``formation.json`` (process counts). Attachments
are modelled the way Heroku sets them: an add-on attached as ``X`` is the ``X_URL`` variable.
Every change of the config variables is a release, as on Heroku: ``release`` holds its number, and
the app restarts on each one (stops, boots, then writes the number it runs to ``running``), so a
rehearsal sees what a dyno sees between a detach and the next variable set.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from migration.errors import PlatformError
from migration.files import replace_file
from migration.platform.rollbackvars import kept_for_rollback, restored_vars
from migration.stackconfig import MovedAddon

__all__ = ["LocalPlatform", "read_env_file", "write_env_file"]

_BOOT_TIMEOUT_SECONDS = 120.0


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
        self.release_file = directory / "release"
        self.running_file = directory / "running"
        if not self.env_file.is_file():
            raise PlatformError(f"local platform: {self.env_file} does not exist")
        self.description = f"local app in {directory}"

    def config_vars(self) -> dict[str, str]:
        return read_env_file(self.env_file)

    def _update(self, changes: Mapping[str, str | None]) -> int:
        """One release: the variables changed, then the release number raised (the app restarts on it)."""
        values = self.config_vars()
        for key, value in changes.items():
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
        write_env_file(self.env_file, values)
        replace_file(self.release_file, str(self.release() + 1))
        return 1

    def release(self) -> int:
        """The latest release's number (0: none made since the directory was set up)."""
        return _number(self.release_file)

    def running_release(self) -> int:
        """The release the app last booted on."""
        return _number(self.running_file)

    def wait_for_release(self, grace: float) -> str:
        # One process, restarted in place: no old one goes on after the release, so *grace* is not waited.
        timeout = _BOOT_TIMEOUT_SECONDS
        latest, deadline = self.release(), time.monotonic() + timeout
        while self.running_release() < latest:
            if time.monotonic() > deadline:
                return f"the app still runs release {self.running_release()} of {latest} after {timeout:g} s"
            time.sleep(0.05)
        return f"the app runs release {latest}"

    def network(self) -> str:
        return "unknown"

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

    def alias(self, moves: Sequence[MovedAddon]) -> int:
        values, added = self.config_vars(), {}
        for move in moves:
            alias_var = f"{move.rollback_alias}_URL"
            if alias_var in values:
                continue
            if move.config_var not in values:
                raise PlatformError(f"local platform: neither {move.config_var} nor {alias_var} is set")
            added[alias_var] = values[move.config_var]
        return self._update(added) if added else 0

    def switch(self, urls: Mapping[str, str], moves: Sequence[MovedAddon], run: str) -> int:
        releases, values = 0, self.config_vars()
        for move in moves:
            if f"{move.rollback_alias}_URL" not in values:
                raise PlatformError(f"local platform: {move.addon} is not attached as {move.rollback_alias}")
            if move.config_var in values:  # the detach: a release of its own, as on Heroku
                releases += self._update({move.config_var: None})
        addon_vars = {move.config_var for move in moves}
        kept = kept_for_rollback(self.config_vars(), (name for name in urls if name not in addon_vars), run)
        return releases + self._update({**urls, **kept})

    def rollback(self, moves: Sequence[MovedAddon]) -> int:
        values = self.config_vars()
        changes: dict[str, str | None] = dict(restored_vars(values))
        for move in moves:
            if f"{move.rollback_alias}_URL" in values:
                changes[move.config_var] = values[f"{move.rollback_alias}_URL"]
        if all(values.get(name) == value for name, value in changes.items()):
            return 0
        return self._update(changes)

    def close(self) -> None:
        return None


def _number(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0
