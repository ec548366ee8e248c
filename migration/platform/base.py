"""What the runbook needs from the app's platform, whichever it is."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from migration.stackconfig import MovedAddon

__all__ = ["Platform"]


class Platform(Protocol):
    """The app's host: Heroku through its Platform API, or a local directory in rehearsals.

    Config vars hold secrets (``DATABASE_URL``); callers use them and never store or print them.
    """

    description: str

    def config_vars(self) -> dict[str, str]: ...

    def set_maintenance(self, on: bool) -> None: ...

    def formation(self) -> dict[str, int]: ...

    def scale(self, counts: Mapping[str, int]) -> None: ...

    def alias(self, moves: Sequence[MovedAddon]) -> None: ...

    def switch(self, urls: Mapping[str, str]) -> None: ...

    def rollback(self, moves: Sequence[MovedAddon]) -> None: ...

    def close(self) -> None: ...
