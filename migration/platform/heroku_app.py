"""One Heroku app as a :class:`~migration.platform.base.Platform`."""

from __future__ import annotations

import time
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

    def network(self) -> str:
        space = self.client.space(self.app)
        return f"private-space:{space}" if space else "common-runtime"

    def formation(self) -> dict[str, int]:
        return {process.type: process.quantity for process in self.client.formation(self.app)}

    def scale(self, counts: Mapping[str, int]) -> None:
        self.client.scale(self.app, counts)

    def alias(self, moves: Sequence[MovedAddon]) -> int:
        return cutover.alias(self.client, self.app, moves)

    def switch(self, urls: Mapping[str, str], moves: Sequence[MovedAddon], run: str) -> int:
        return cutover.switch(self.client, self.app, dict(urls), moves, run)

    def rollback(self, moves: Sequence[MovedAddon]) -> int:
        return cutover.rollback(self.client, self.app, moves)

    def wait_for_release(self, grace: float) -> str:
        # Heroku sends the old release's dynos SIGTERM as the new one starts and kills them 30 s later (with
        # preboot, once the new dynos are up): after that long none of them writes anywhere.
        time.sleep(grace)
        return f"waited {grace:g} s for the old release's dynos to stop (Heroku gives them 30 s after SIGTERM)"

    def close(self) -> None:
        self.client.close()
