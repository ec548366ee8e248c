"""What every phase of a run works with: settings, the stack's config, the platform, the state."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migration.errors import ConfigError, UsageError
from migration.infra import Infra, StackOutputs
from migration.platform.base import Platform
from migration.runbook.state import RunState
from migration.stackconfig import MovedAddon, StackConfig

if TYPE_CHECKING:
    from migration.runner.statestore import StateMirror

__all__ = ["RunContext", "RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    """Everything ``ferry run`` / ``ferry rollback`` take.

    :param root: the Pulumi project directory (``Pulumi.yaml``, ``Pulumi.<stack>.yaml``).
    :param platform: ``heroku`` (the Platform API) or ``local:DIR`` (a rehearsal's stand-in).
    :param target_url: PostgreSQL target the copy writes to; without it the stack provisions one.
    :param target_app_url: what ``DATABASE_URL`` becomes (default: the stack's app-role URL,
        else *target_url*).
    :param yes: never ask; CI mode.
    :param tls_skip_verify: accept the source Redis's self-signed certificate (the target's is verified).
    """

    stack: str
    root: Path
    state_dir: Path
    platform: str = "heroku"
    target_url: str | None = None
    target_app_url: str | None = None
    target_redis_url: str | None = None
    yes: bool = False
    tls_skip_verify: bool = False
    smoke_urls: tuple[str, ...] = ()
    jobs: int | None = None
    verify_mode: str = "full"
    #: Where the data-plane phases run: in this process (``None``), or as tasks: ``local`` (child processes)
    #: or ``ecs`` (Fargate tasks in the stack's private subnets).
    runner: str | None = None
    #: How many tasks share the PostgreSQL copy (``--tasks``).
    tasks: int = 1
    #: Inside a task: the runner its caller runs with (what a hint tells the user to run again with).
    caller_runner: str | None = None
    #: The move of the stack's ``ferry:moves`` this run makes (``None``: the stack has one, ``heroku``'s).
    move: str | None = None
    #: No move of the stack runs after this one (the bulk-load profile ends with its switch).
    last_move: bool = True

    @property
    def resume_command(self) -> str:
        """The command that goes on with this run (with the runner it runs with)."""
        runner = self.runner or self.caller_runner
        return (
            f"ferry run --stack {self.stack}"
            + (f" --move {self.move}" if self.move else "")
            + (f" --runner {runner}" if runner else "")
        )

    @property
    def uses_stack(self) -> bool:
        """Provision and cut over through Pulumi, or work on targets given as URLs."""
        return self.target_url is None

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"


@dataclass
class RunContext:
    settings: RunSettings
    config: StackConfig
    state: RunState
    say: Callable[[str], None]
    confirm: Callable[[str], bool]
    _platform: Platform | None = None
    _infra: Infra | None = None
    _outputs: StackOutputs | None = None
    _saving: threading.Lock = field(default_factory=threading.Lock)
    #: Where the state is shared with the run's tasks (``--runner ecs``: the stack's state bucket).
    mirror: StateMirror | None = None
    #: Inside a task: hands a step that is the caller's (Pulumi's, the platform's) over to it, and waits.
    hand_over: Callable[[str], None] | None = None

    # -- state ---------------------------------------------------------------------------------
    def save(self) -> None:
        with self._saving:  # stores moved side by side save from their own threads
            self.state.save(self.settings.state_file)
            if self.mirror is not None:
                self.mirror.push(self.settings.state_file)

    # -- the platform and the stack ----------------------------------------------------------------
    @property
    def platform(self) -> Platform:
        if self._platform is None:
            self._platform = _open_platform(self.settings.platform, self.config.heroku.app)
        return self._platform

    @property
    def infra(self) -> Infra:
        if self._infra is None:
            self._infra = Infra(self.settings.root, self.settings.stack, self.say)
        return self._infra

    def stack_outputs(self, fresh: StackOutputs | None = None) -> StackOutputs:
        if fresh is not None:
            self._outputs = fresh
        if self._outputs is None:
            self._outputs = self.infra.outputs()
        return self._outputs

    def close(self) -> None:
        if self._platform is not None:
            self._platform.close()

    # -- where the stores are (what a store asks to find its sides) -----------------------------------
    def old_url(self, move: MovedAddon) -> str | None:
        """The old add-on's URL on the app, wherever the cutover has left it (main name or rollback alias)."""
        config = self.platform.config_vars()
        primary, alias = config.get(move.config_var), config.get(f"{move.rollback_alias}_URL")
        return (alias or primary) if self.state.done("alias") else (primary or alias)

    def stack_output(self, name: str) -> Any:
        """:raises ConfigError: the stack has no output *name* (it was not provisioned yet)."""
        try:
            return self.stack_outputs().values[name]
        except KeyError:
            raise ConfigError(
                f"stack {self.settings.stack} has no output {name!r}: run the provision phase first"
            ) from None


def _open_platform(spec: str, app: str) -> Platform:
    if spec.startswith("local:"):
        from migration.platform.local import LocalPlatform

        directory = Path(spec.removeprefix("local:"))
        # A rehearsal of several apps keeps each app's stand-in in a directory named after it.
        return LocalPlatform(directory / app if (directory / app).is_dir() else directory)
    if spec != "heroku":
        raise UsageError(f"--platform must be heroku or local:DIR, not {spec!r}")
    from migration.platform.heroku import HerokuClient
    from migration.platform.heroku_app import HerokuApp

    return HerokuApp(HerokuClient(os.environ.get("HEROKU_API_KEY")), app)
