"""What every phase of a run works with: settings, the stack's config, the platform, the state."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from migration.errors import ConfigError, PlatformError, UsageError
from migration.infra import Infra, StackOutputs
from migration.platform.base import Platform
from migration.runbook.state import RunState
from migration.stackconfig import MovedAddon, StackConfig

__all__ = ["RunContext", "RunSettings", "Sources", "Targets"]


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

    @property
    def uses_stack(self) -> bool:
        """Provision and cut over through Pulumi, or work on targets given as URLs."""
        return self.target_url is None

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"


@dataclass(frozen=True)
class Sources:
    database_url: str
    redis_url: str | None


@dataclass(frozen=True)
class Targets:
    database_url: str
    app_database_url: str
    redis_url: str | None
    buckets: dict[str, str] = field(default_factory=dict)  # source bucket → target bucket


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

    # -- state ---------------------------------------------------------------------------------
    def save(self) -> None:
        with self._saving:  # stores moved side by side save from their own threads
            self.state.save(self.settings.state_file)

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

    # -- what moves where ---------------------------------------------------------------------------
    def moves(self) -> list[MovedAddon]:
        return self.config.moved_addons()

    @property
    def moves_redis(self) -> bool:
        return any(move.attachment == "REDIS" for move in self.moves())

    def sources(self) -> Sources:
        """The old stores' URLs, wherever the cutover has left them (main name or rollback alias)."""
        config = self.platform.config_vars()
        urls = {move.attachment: _source_url(config, move, aliased=self.state.done("alias")) for move in self.moves()}
        database = urls["DATABASE"]
        if database is None:
            raise PlatformError(f"{self.platform.description}: DATABASE_URL is not set", side="source")
        redis = urls.get("REDIS")
        if redis and self.settings.tls_skip_verify:
            redis = _without_certificate_check(redis)
        return Sources(database_url=database, redis_url=redis)

    def targets(self) -> Targets:
        settings, config = self.settings, self.config
        buckets = self.bucket_pairs()
        if not settings.uses_stack:
            assert settings.target_url is not None
            if self.moves_redis and not settings.target_redis_url:
                raise UsageError("migration.redis is on: give --target-redis-url too", side="target")
            return Targets(
                database_url=settings.target_url,
                app_database_url=settings.target_app_url or settings.target_url,
                redis_url=settings.target_redis_url,
                buckets=buckets,
            )
        if settings.target_app_url:
            raise UsageError(
                "--target-app-url needs --target-url; with a stack, ferry:migration.appRole picks the role",
                side="target",
            )
        outputs = self.stack_outputs().values
        database = config.database.databases[0]
        app_urls = "databaseUrls" if config.migration.app_role == "app" else "databaseOwnerUrls"
        try:
            return Targets(
                database_url=outputs["databaseOwnerUrls"][database],
                app_database_url=outputs[app_urls][database],
                redis_url=outputs.get("redisUrl") if self.moves_redis else None,
                buckets=buckets,
            )
        except KeyError as exc:
            raise ConfigError(f"stack {settings.stack} has no output {exc}: run the provision phase first") from None

    def bucket_pairs(self) -> dict[str, str]:
        """Source bucket → target bucket, for each bucket the stack file moves."""
        storage = self.config.storage
        if not self.config.migration.s3 or storage is None:
            return {}
        return {
            bucket.source: storage.bucket_name(self.config.app, self.config.stack, bucket)
            for bucket in storage.buckets
            if bucket.source
        }


def _without_certificate_check(url: str) -> str:
    """The source's own URL told to accept any certificate: Heroku Redis presents a self-signed
    one. Only the source: the target's certificate is still verified."""
    if not url.startswith("rediss://"):
        return url
    return url + ("&" if "?" in url else "?") + "ssl_cert_reqs=none"


def _source_url(config: dict[str, str], move: MovedAddon, *, aliased: bool) -> str | None:
    primary, alias = config.get(move.config_var), config.get(f"{move.rollback_alias}_URL")
    return (alias or primary) if aliased else (primary or alias)


def _open_platform(spec: str, app: str) -> Platform:
    if spec.startswith("local:"):
        from migration.platform.local import LocalPlatform

        return LocalPlatform(Path(spec.removeprefix("local:")))
    if spec != "heroku":
        raise UsageError(f"--platform must be heroku or local:DIR, not {spec!r}")
    from migration.platform.heroku import HerokuClient
    from migration.platform.heroku_app import HerokuApp

    return HerokuApp(HerokuClient(os.environ.get("HEROKU_API_KEY")), app)
