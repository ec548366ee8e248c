"""The one interface the runbook drives every store through, and the narrow view a store is handed.

A phase never reaches into a store: it asks each moved store, in turn or side by side,
to check its target, copy while the app is live, report its lag, stop its own writes (the
read-only freeze), copy what is left inside the freeze, verify, and let go (rollback).
A store implements what applies to it; the defaults do nothing.

A store is handed a :class:`StoreRun`, never the run's whole context: its own config section,
its own state section, the freeze, and its two sides — data moves from ``from_side`` to
``to_side``. Today's run gives it source → target; a reverse follow gives the same store the
sides the other way round (:meth:`StoreRun.reversed`), so nothing in a store assumes which
side is the old one. Each store says itself where its sides are (:meth:`Store.endpoint`),
what state it keeps (:attr:`Store.section`) and what the app's config reads after the switch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Generic, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from migration.errors import ConfigError
from migration.preflight import PreflightReport
from migration.progress import ProgressSink
from migration.runbook.context import RunSettings
from migration.runbook.follower import Follower, FollowerStatus
from migration.runbook.state import RunState, StoreState
from migration.stackconfig import MovedAddon, StackConfig
from migration.verify import VerifyReport

__all__ = [
    "FreezeView",
    "ProgressFor",
    "Side",
    "Store",
    "StoreRun",
    "StoreVerify",
    "Whereabouts",
    "keep_strategy",
    "kept_strategy",
    "location_of",
]

#: A progress display for a unit ("bytes", "keys", "objects"); one per store running side by side.
ProgressFor = Callable[[str], ProgressSink]
#: Which of a store's two places: the one the app uses today, or the one it moves to.
Side = Literal["source", "target"]

Config = TypeVar("Config")
Section = TypeVar("Section", bound=StoreState)
Endpoint = TypeVar("Endpoint")


class Whereabouts(Protocol):
    """What a store may ask of the run to find its two sides (the run's context answers)."""

    @property
    def config(self) -> StackConfig: ...

    @property
    def settings(self) -> RunSettings:
        """The command line's: targets given as URLs (``--target-url`` …) instead of the stack's."""
        ...

    def old_url(self, move: MovedAddon) -> str | None:
        """The old store's URL on the app, wherever the cutover has left it (main name or rollback alias)."""
        ...

    def stack_output(self, name: str) -> Any:
        """:raises ConfigError: the stack has no such output yet."""
        ...


class FreezeView:
    """The freeze as a store sees it, read from the run's state as it is now."""

    def __init__(self, configured: str, state: RunState) -> None:
        #: What the stack file asks for (``maintenance``, ``read-only``, ``fence``).
        self.configured = configured
        self._state = state

    @property
    def in_force(self) -> str | None:
        """The mode of the freeze this run took (``None`` before it)."""
        return self._state.freeze_mode

    @property
    def frozen(self) -> bool:
        """The app's writes are stopped now."""
        return self._state.frozen


class StoreRun(Generic[Config, Section, Endpoint]):
    """What one store is handed for one phase: its config, its state, its sides, the freeze.

    :param locate: where one side of the store is (resolved the first time it is asked for).
    :param save: write the run's state (this store's section with it).
    :param work_dir: where the store's background workers keep their status and log files.
    :param attempt: which attempt of the running phase this is (1: the first).
    :param rolling_back: the run is being rolled back.
    """

    def __init__(
        self,
        name: str,
        config: Config,
        state: Section,
        locate: Callable[[Side], Endpoint],
        freeze: FreezeView,
        *,
        save: Callable[[], None],
        say: Callable[[str], None],
        work_dir: Path,
        attempt: int = 1,
        rolling_back: bool = False,
        direction: tuple[Side, Side] = ("source", "target"),
    ) -> None:
        self.name, self.config, self.state, self.freeze = name, config, state, freeze
        self.save, self.say, self.work_dir = save, say, work_dir
        self.attempt, self.rolling_back, self.direction = attempt, rolling_back, direction
        self._locate = locate

    @cached_property
    def from_side(self) -> Endpoint:
        """Where the data is read from (and whose writes a freeze stops)."""
        return self._locate(self.direction[0])

    @cached_property
    def to_side(self) -> Endpoint:
        """Where the data is written to."""
        return self._locate(self.direction[1])

    def reversed(self) -> StoreRun[Config, Section, Endpoint]:
        """The same store moving the other way (a reverse follow: the new side back into the old one)."""
        back: tuple[Side, Side] = (self.direction[1], self.direction[0])
        return StoreRun(
            self.name, self.config, self.state, self._locate, self.freeze,
            save=self.save, say=self.say, work_dir=self.work_dir, attempt=self.attempt,
            rolling_back=self.rolling_back, direction=back,
        )  # fmt: skip

    @property
    def back(self) -> bool:
        """This view moves the store from the target back into the old side."""
        return self.direction[0] == "target"

    def follower(self) -> Follower:
        """This store's background worker (its pid kept in the state section); the follow back's, when
        this view moves the store back."""
        if self.back:
            return Follower(f"{self.name}-back", self.work_dir, self.state.back_follower, self.save)
        return Follower(self.name, self.work_dir, self.state.follower, self.save)


Strategy = TypeVar("Strategy")


def kept_strategy(
    run: StoreRun[Any, Any, Any], strategy: Strategy, setting: str, ways: tuple[type[Strategy], ...]
) -> Strategy:
    """*strategy*, the way the stack file says this store's data moves, if it is the way this run began
    copying with (or it has not begun yet): a run that changed ways halfway would leave a follower
    writing into the target, or a copy no follower knows. Rolling back, the way it began is undone,
    whatever the stack file says now.

    :param ways: every strategy of the store (what the state may name).
    :raises ConfigError: it is not the way this run began.
    """
    chosen, began = type(strategy).__name__, run.state.strategy
    if began is None or began == chosen:
        return strategy
    known = {way.__name__: way for way in ways}
    if began not in known:
        raise ConfigError(f"the run's state says {run.name} moves by {began!r}, which ferry has no way of")
    if run.rolling_back:
        return known[began]()
    raise ConfigError(
        f"{setting} changed since this run began copying {run.name} ({began} then, {chosen} now): "
        "put it back, or `ferry rollback` and run again"
    )


def keep_strategy(run: StoreRun[Any, Any, Any], strategy: object) -> None:
    """The copy begins: *strategy* is this run's way of moving the store until it ends."""
    if run.state.strategy is None:
        run.state.strategy = type(strategy).__name__
        run.save()


def location_of(url: str) -> str:
    """host:port/database of a URL, without user or password (what a record may say of it)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or ''}{parts.path}"


@dataclass(frozen=True)
class StoreVerify:
    """One comparison a store made: what (``postgres``, ``s3:BUCKET``), its JSON report, its differences."""

    name: str
    report: dict[str, Any]
    differences: list[str]

    @classmethod
    def of(cls, name: str, report: VerifyReport) -> StoreVerify:
        return cls(name, report.to_json(), [f"{report.store} {d.kind} {d.name}" for d in report.differences])


class Store(Generic[Config, Section, Endpoint]):
    """A data store the runbook moves. Subclasses set :attr:`name` and :attr:`section`, say where their
    sides are and what their config section holds, and override the phases that apply."""

    name: str = ""
    #: The type of this store's section of the run state.
    section: type[Section]
    #: Its copy goes on after the switch (:meth:`after_switch`): the app's writes to the old side do not stop.
    follows_after_switch: bool = False

    # -- what the store is, in this run ------------------------------------------------------------
    def configure(self, config: StackConfig, settings: RunSettings) -> Config:
        """This store's config section, from the stack file and the command line's overrides."""
        raise NotImplementedError

    def moves(self, config: Config, where: Whereabouts) -> bool:
        """Whether this run moves the store."""
        raise NotImplementedError

    def endpoint(self, where: Whereabouts, side: Side) -> Endpoint:
        """Where *side* of this store is. :raises FerryError: it cannot be found (naming the side)."""
        raise NotImplementedError

    def check_kept(self, run: StoreRun[Config, Section, Endpoint]) -> None:
        """Asked as every phase begins. :raises ConfigError: the stack file changed how this store moves
        since the run began copying it (a store with strategies asks :func:`kept_strategy`)."""

    def addons(self, stack: StackConfig) -> list[MovedAddon]:
        """The add-ons the app leaves when this store moves (aliased, then detached, at the cutover)."""
        return []

    def switched_config(self, run: StoreRun[Config, Section, Endpoint]) -> dict[str, str]:
        """The app's config variables that point it at ``to_side``, set by the switch."""
        return {}

    def recorded(self, run: StoreRun[Config, Section, Endpoint]) -> dict[str, Any]:
        """What the run's record says of where this store went (never a secret)."""
        return {}

    # -- the phases --------------------------------------------------------------------------------
    def preflight(self, run: StoreRun[Config, Section, Endpoint]) -> PreflightReport | None:
        """Checks of both sides before anything is copied (``None``: nothing to check)."""
        return None

    def check_freeze(self, run: StoreRun[Config, Section, Endpoint]) -> None:
        """:raises FerryError: the configured freeze cannot stop the writes to ``from_side``."""

    def copy_live(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """Copy while the app is live (and start following it, where the store can)."""
        return ""

    def live_status(self, run: StoreRun[Config, Section, Endpoint]) -> FollowerStatus | None:
        """The background copy's last word, where the store has one."""
        return None

    def catch_up(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """While live, before the freeze: let the background copy catch up, verify what can be verified
        while the app writes. By default, only its lag is reported."""
        status = self.live_status(run)
        if status is None:
            return ""
        return f"{self.name}: {status.queued} changes waiting, {status.seconds_behind:.1f} s behind"

    def last_live_pass(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """At the end of ``catch-up``, once every store caught up (one may take minutes): compare again while
        live what changed since its own live verify, so the freeze has less to compare."""
        return ""

    def freeze_writes(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """Stop the app's writes to ``from_side``, reads going on (the read-only freeze)."""
        return ""

    def writes_stopped(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """The freeze has taken hold, whatever its mode: take what will show later that it held."""
        return ""

    def unfreeze_writes(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """Let the app write to ``from_side`` again."""
        return ""

    def final_sync(self, run: StoreRun[Config, Section, Endpoint], progress_for: ProgressFor) -> str:
        """Inside the freeze: bring ``to_side`` to the frozen ``from_side``'s state."""
        raise NotImplementedError

    def verify(self, run: StoreRun[Config, Section, Endpoint]) -> list[StoreVerify]:
        raise NotImplementedError

    def prove_frozen(self, run: StoreRun[Config, Section, Endpoint]) -> list[StoreVerify]:
        """Inside the freeze, after the verify and again right before the switch: evidence that owes
        nothing to the copy's own machinery that ``from_side`` took no write since its writes stopped."""
        return []

    def after_switch(self, run: StoreRun[Config, Section, Endpoint]) -> tuple[str, list[StoreVerify]]:
        """Once the app runs the release the switch made (:attr:`follows_after_switch` stores only): bring
        ``to_side`` level with what ``from_side`` took until then, and compare them."""
        return "", []

    def stop_following(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """Stop a background copy without draining it (rollback)."""
        return ""

    def forget_copy(self, run: StoreRun[Config, Section, Endpoint]) -> None:
        """The app wrote to ``from_side`` again after a final sync: the next one copies anew."""

    def target_writes(self, run: StoreRun[Config, Section, Endpoint]) -> int | None:
        """A count of the writes ``to_side`` has taken, only ever growing (the switch notes it; a rollback after
        it says how many the app made since), or ``None`` where the store keeps none."""
        return None

    def finish_target(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """After the switch and the unfreeze, the app writing to ``to_side``: work that may run meanwhile."""
        return ""

    def cleanup(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """After the run is recorded: remove what the copy left on either side."""
        return ""

    # -- the follow back (``migration.reverse``): a rollback after the switch loses nothing ----------
    def prepare_back(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """While live, before the freeze: what the follow back will need on ``to_side`` (the target)."""
        return ""

    def begin_back(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """Inside the freeze, both sides proven equal, right before the switch: the follow back starts from
        here (nothing the app writes to ``to_side`` from now on may go unseen)."""
        return ""

    def close_old(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """After the switch, before the app writes again (unfreeze): ``from_side`` closed to any writer but the
        follow back, whatever the freeze's mode."""
        return ""

    def follow_back(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """After the switch (*run* moves back: ``from_side`` is the target): follow its writes into the old
        side in the background, until ``finish`` or a rollback."""
        return ""

    def back_log(self, run: StoreRun[Config, Section, Endpoint]) -> dict[str, Any]:
        """What the follow back (*run* moves back) has waiting on the new side, where the store keeps a log."""
        return {}

    def follow_back_lost(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """What makes the follow back (*run* moves back) unable to bring every write back any more (``""``:
        nothing: a dead worker is started again by the rollback)."""
        return ""

    def finish(self, run: StoreRun[Config, Section, Endpoint]) -> str:
        """The move is final: stop the follow back and take off what it needed, on both sides."""
        return ""
