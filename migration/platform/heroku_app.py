"""One Heroku app as a :class:`~migration.platform.base.Platform`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from migration.platform import cutover
from migration.platform.heroku import HerokuClient
from migration.stackconfig import MovedAddon

__all__ = ["HerokuApp"]


class HerokuApp:
    """:param client: an open Platform API client. :param app: the app's name."""

    def __init__(self, client: HerokuClient, app: str) -> None:
        self.client, self.app = client, app
        self.description = f"Heroku app {app}"

    def config_vars(self) -> dict[str, str]:
        return self.client.config_vars(self.app)

    def set_maintenance(self, on: bool) -> None:
        self.client.set_maintenance(self.app, on)

    def formation(self) -> dict[str, int]:
        return {process.type: process.quantity for process in self.client.formation(self.app)}

    def scale(self, counts: Mapping[str, int]) -> None:
        self.client.scale(self.app, counts)

    def alias(self, moves: Sequence[MovedAddon]) -> None:
        cutover.alias(self.client, self.app, moves)

    def switch(self, urls: Mapping[str, str]) -> None:
        cutover.switch(self.client, self.app, dict(urls))

    def rollback(self, moves: Sequence[MovedAddon]) -> None:
        cutover.rollback(self.client, self.app, moves)

    def close(self) -> None:
        self.client.close()
