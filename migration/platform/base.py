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

    def network(self) -> str:
        """Where the app runs, as far as its host tells: ``private-space:NAME`` and ``common-runtime`` (Heroku),
        ``unknown`` (a host that does not say: the stack file's ``reach`` is taken at its word)."""
        ...

    def formation(self) -> dict[str, int]: ...

    def scale(self, counts: Mapping[str, int]) -> None: ...

    def alias(self, moves: Sequence[MovedAddon]) -> int:
        """Attach each old add-on under its rollback alias (the app keeps its main attachment); the
        releases made."""
        ...

    def switch(self, urls: Mapping[str, str], moves: Sequence[MovedAddon], run: str) -> int:
        """Detach each moved add-on's main attachment, then set *urls* in one release right after; the
        variables in *urls* that are no add-on's are kept for the rollback in that same release (for *run*:
        a keeper of an earlier run is replaced). The releases made."""
        ...

    def rollback(self, moves: Sequence[MovedAddon]) -> int:
        """Unset the switched variables (putting kept ones back), then attach each old add-on under its
        old name again; the releases made."""
        ...

    def wait_for_release(self, grace: float) -> str:
        """Return once no process of the app runs a release older than the latest; what was waited for.

        :param grace: how long a process of the old release may go on after a new one is out (Heroku: 30 s
            between SIGTERM and SIGKILL; ``migration.drainSeconds``)."""
        ...

    def close(self) -> None: ...
