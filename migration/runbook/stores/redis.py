"""Redis in the runbook: the store, and the strategy it moves its keys by (chosen once).

:class:`LiveCopy` (``migration.redisCopy: live``, the default) scan-copies from ``copy`` on in a
background worker that follows the keyspace notifications, and drains it in ``final-sync``;
:class:`ScanInFreeze` (``scan``) copies every key inside the freeze; :class:`ReplicaOf` (``replicaof``)
lets a self-managed target replicate the source, promoted inside the freeze once caught up. Pausing and
resuming the source's writes are the store's own, whatever the strategy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias

from migration.errors import PreconditionError, UsageError
from migration.preflight import PreflightReport
from migration.redis import (
    LiveRedisVerify,
    RedisCopyOptions,
    can_pause_writes,
    copy_redis,
    level_kept,
    notifications_at,
    pause_writes,
    preflight_redis,
    resume_writes,
    stop_replicating,
    verify_again_live,
    verify_changed,
    verify_live,
    verify_redis,
)
from migration.runbook.context import RunSettings
from migration.runbook.follower import Follower, FollowerStatus
from migration.runbook.state import StoreState
from migration.runbook.stores.base import (
    ProgressFor,
    Side,
    Store,
    StoreRun,
    StoreVerify,
    Whereabouts,
    keep_strategy,
    kept_strategy,
    location_of,
)
from migration.stackconfig import MovedAddon, StackConfig
from migration.worker import RedisLiveCopyJob

__all__ = ["LiveCopy", "RedisStore", "ReplicaOf", "ScanInFreeze"]

_SCAN_TIMEOUT_SECONDS = 6 * 3600
_DRAIN_TIMEOUT_SECONDS = 600
#: The live verify's witnesses listen from ``catch-up`` to ``verify`` in the process that runs both: a run
#: resumed in between has none, and its verify compares every key.
_LIVE_PASSES: dict[Path, LiveRedisVerify] = {}


@dataclass(frozen=True)
class RedisConfig:
    moves: bool
    copy: Literal["live", "scan", "replicaof"]
    #: Followed back from the switch until ``ferry finish`` (``migration.reverse``).
    follows_back: bool = False
    #: The app's variable the switch points at the target.
    config_var: str = "REDIS_URL"


@dataclass(frozen=True)
class RedisSide:
    url: str = field(repr=False)


RedisRun: TypeAlias = StoreRun[RedisConfig, StoreState, RedisSide]


class ScanInFreeze:
    """Every key copied inside the freeze: nothing runs while the app writes."""

    def copy_live(self, run: RedisRun) -> str:
        return "redis: copied inside the freeze (redisCopy: scan)"

    def catch_up(self, run: RedisRun) -> str:
        return ""

    def final_sync(self, run: RedisRun, progress_for: ProgressFor) -> str:
        # A live copy left from an earlier way of moving it would write into the target after this copy.
        run.follower().stop()
        # Writes are frozen, so emptying the target (ours since the preflight found it empty) and copying
        # again is exact, where a merge would keep keys the source has deleted since.
        options = RedisCopyOptions(source_url=run.from_side.url, target_url=run.to_side.url, flush_target=True)
        progress = progress_for("keys")
        try:
            result = copy_redis(options, progress)
        finally:
            progress.close()
        return f"redis: copied {result.keys.copied} keys inside the freeze"


class LiveCopy(ScanInFreeze):
    """Scan-copied and followed from the copy phase on; drained inside the freeze (or, when the live copy
    is not there to drain, copied whole inside it after all)."""

    def copy_live(self, run: RedisRun) -> str:
        follower = run.follower()
        if follower.alive():
            return f"redis: live copy already running (pid {follower.pid})"
        # A crashed earlier attempt may have copied part of it: same-named keys are replaced.
        job = RedisLiveCopyJob(run.from_side.url, run.to_side.url, follower.status_file, merge=run.attempt > 1)
        pid = follower.start(job, ready_phase="live", timeout=_SCAN_TIMEOUT_SECONDS)
        return f"redis: scan done, following live writes (pid {pid})"

    def catch_up(self, run: RedisRun) -> str:
        """Every key compared while live, witnessed from before the first, so the freeze compares only the
        keys written since."""
        forget_live_pass(run)
        live = verify_live(run.from_side.url, run.to_side.url)
        if isinstance(live, str):
            return f"redis: every key is compared inside the freeze ({live})"
        _LIVE_PASSES[run.follower().status_file] = live
        return (
            f"redis: verified live: {live.keys_checked} keys in {live.seconds:.1f} s, "
            f"{len(live.kept)} to compare again inside the freeze"
        )

    def final_sync(self, run: RedisRun, progress_for: ProgressFor) -> str:
        follower = run.follower()
        was_running = follower.alive()
        if follower.drain(_DRAIN_TIMEOUT_SECONDS):
            return "redis: live copy drained and stopped"
        if was_running:
            run.say(f"redis live copy ended without draining ({follower.last_line()}); copying again inside the freeze")
        # No live copy to stop (it died, a crash took it, or a failed verify unfroze the app).
        return super().final_sync(run, progress_for)


class ReplicaOf(LiveCopy):
    """The target replicates the source from the copy phase on (``REPLICAOF``: a self-managed target, not
    ElastiCache); inside the freeze, once it has processed the whole replication stream, it is promoted."""

    def copy_live(self, run: RedisRun) -> str:
        follower = run.follower()
        if follower.alive():
            return f"redis: replicating already (pid {follower.pid})"
        job = RedisLiveCopyJob(run.from_side.url, run.to_side.url, follower.status_file, replicaof=True)
        pid = follower.start(job, ready_phase="live", timeout=_SCAN_TIMEOUT_SECONDS)
        return f"redis: the target replicates the source (pid {pid})"

    def final_sync(self, run: RedisRun, progress_for: ProgressFor) -> str:
        follower = run.follower()
        if follower.drain(_DRAIN_TIMEOUT_SECONDS):
            return "redis: the replica caught up and was promoted"
        # Killed or behind: promoted as it is (a killed worker left it replicating) and copied whole.
        stop_replicating(run.to_side.url)
        return ScanInFreeze.final_sync(self, run, progress_for)


class RedisStore(Store[RedisConfig, StoreState, RedisSide]):
    name = "redis"
    section = StoreState

    def configure(self, config: StackConfig, settings: RunSettings) -> RedisConfig:
        migration = config.migration
        return RedisConfig(moves=migration.redis, copy=migration.redis_copy, follows_back=migration.follows_back,
                           config_var=config.heroku.redis_config_var)  # fmt: skip

    def strategy(self, run: RedisRun) -> ScanInFreeze:
        """The one place that reads how this run moves Redis."""
        if run.back:
            return LiveCopy()  # the follow back is a live copy, whichever way the keys went forward
        ways = {"live": LiveCopy, "scan": ScanInFreeze, "replicaof": ReplicaOf}
        return kept_strategy(run, ways[run.config.copy](), "migration.redisCopy", tuple(ways.values()))

    def addons(self, stack: StackConfig) -> list[MovedAddon]:
        return [move for move in stack.moved_addons() if move.config_var == stack.heroku.redis_config_var]

    def moves(self, config: RedisConfig, where: Whereabouts) -> bool:
        return config.moves and where.config.heroku.redis_addon is not None  # the validator makes redis need it

    def endpoint(self, where: Whereabouts, side: Side) -> RedisSide:
        if side == "source":
            (move,) = self.addons(where.config)
            url = where.old_url(move)
            if url is None:
                raise PreconditionError(
                    f"migration.redis is on but the app has no {move.config_var} (nor {move.rollback_alias}_URL): "
                    f"attach {move.addon} as {move.attachment}, or set redis: false",
                    side="source",
                )
            return RedisSide(_without_certificate_check(url) if where.settings.tls_skip_verify else url)
        settings = where.settings
        if not settings.uses_stack:
            if not settings.target_redis_url:
                raise UsageError("migration.redis is on: give --target-redis-url too", side="target")
            return RedisSide(settings.target_redis_url)
        return RedisSide(str(where.stack_output("redisUrl")))

    def switched_config(self, run: RedisRun) -> dict[str, str]:
        return {run.config.config_var: run.to_side.url}

    def recorded(self, run: RedisRun) -> dict[str, Any]:
        return {"redis": location_of(run.to_side.url)}

    def preflight(self, run: RedisRun) -> PreflightReport:
        return preflight_redis(run.from_side.url, run.to_side.url, tls_skip_verify=False)

    def check_freeze(self, run: RedisRun) -> None:
        freeze = run.freeze.configured
        if freeze not in ("read-only", "fence"):
            return
        reason = can_pause_writes(run.from_side.url)
        if reason is not None:
            raise PreconditionError(f"freeze {freeze}: {reason}; use migration.freeze: maintenance", side="source")

    def check_kept(self, run: RedisRun) -> None:
        self.strategy(run)

    def copy_live(self, run: RedisRun) -> str:
        strategy = self.strategy(run)
        keep_strategy(run, strategy)
        return strategy.copy_live(run)

    def live_status(self, run: RedisRun) -> FollowerStatus | None:
        return run.follower().status()

    def freeze_writes(self, run: RedisRun) -> str:
        pause_writes(run.from_side.url)
        return f"{_which(run)} Redis writes paused"

    def unfreeze_writes(self, run: RedisRun) -> str:
        resume_writes(run.from_side.url)
        return f"{_which(run)} Redis writes resumed"

    def final_sync(self, run: RedisRun, progress_for: ProgressFor) -> str:
        detail = self.strategy(run).final_sync(run, progress_for)
        if run.config.follows_back and not run.back:
            # Listening to the target before the switch lets the app write there (its start is no part of the
            # window: the switch waits for it). Nothing to scan: the sides are equal once the verify says so.
            _listen_back(run)
        return detail

    def prepare_back(self, run: RedisRun) -> str:
        """While live: the new Redis must announce every write for the live copy back (before the freeze,
        not at the switch, where a failure would hold the app frozen)."""
        reason = notifications_at(run.to_side.url)
        if reason is not None:
            raise PreconditionError(
                f"{reason}: the follow back (migration.reverse) copies the new Redis's writes back by them; "
                "CONFIG SET notify-keyspace-events KEA (the stack's parameter group sets it), or reverse: false",
                side="target",
            )
        return ""

    def begin_back(self, run: RedisRun) -> str:
        # Launched at the final sync; a crash since took it: listening again now, before the switch, is as good.
        pid = _listen_back(run).await_ready("live", _SCAN_TIMEOUT_SECONDS)
        run.state.back_since = time.time()
        run.save()
        return f"redis: the follow back listens to the target (pid {pid})"

    def follow_back(self, run: RedisRun) -> str:
        """The old Redis takes the follow back's writes (its pause is lifted: Redis cannot pause one client's
        writes and let another's through); a follow back that died is started again, copying every key."""
        held = resume_writes(run.to_side.url, refuse_held=True)
        refused = f"; {held} writes held since the freeze refused" if held else ""
        follower = run.follower()
        if follower.alive():
            return (f"redis: following the target back into the old Redis (pid {follower.pid}; its writes "
                    f"resumed{refused})")  # fmt: skip
        # Keys the target deleted while nothing followed are compared (and refused) by a rollback's verify.
        job = RedisLiveCopyJob(run.from_side.url, run.to_side.url, follower.status_file, merge=True)
        pid = follower.start(job, ready_phase="live", timeout=_SCAN_TIMEOUT_SECONDS)
        return f"redis: following the target back into the old Redis again, every key copied (pid {pid})"

    def finish(self, run: RedisRun) -> str:
        stopped = run.reversed().follower().stop()
        said = ["follow back stopped" if stopped else "no follow back was running"]
        if run.freeze.in_force in ("read-only", "fence") and run.state.back_since is not None:
            # Closed again, as a run without the follow back leaves it: no dyno writes where nobody reads.
            pause_writes(run.from_side.url)
            said.append("the old Redis's writes paused again")
        return "redis: " + ", ".join(said)

    def catch_up(self, run: RedisRun) -> str:
        lag = super().catch_up(run)
        return "; ".join(d for d in (lag, self.strategy(run).catch_up(run)) if d)

    def last_live_pass(self, run: RedisRun) -> str:
        live = _LIVE_PASSES.get(run.follower().status_file)
        if live is None:
            return ""
        compared = verify_again_live(run.from_side.url, run.to_side.url, live)
        if compared is None:
            forget_live_pass(run)
            return "redis: the witness cannot say what changed any more: every key is compared inside the freeze"
        leveled = ""
        if run.back and live.kept:
            # The old Redis takes writes since the follow back began (Redis cannot pause all but one client):
            # what differs is brought to the new Redis's state, the one the app has read and written since.
            leveled = f"; {level_kept(run.from_side.url, run.to_side.url, live)} keys that differed copied again"
        return f"redis: {compared} keys written since compared again{leveled}, {len(live.kept)} left to the freeze"

    def verify(self, run: RedisRun) -> list[StoreVerify]:
        live = _LIVE_PASSES.pop(run.follower().status_file, None)
        if live is None:
            report = verify_redis(run.from_side.url, run.to_side.url)
        else:
            report = verify_changed(run.from_side.url, run.to_side.url, live)
        return [StoreVerify.of(run.name, report)]

    def forget_copy(self, run: RedisRun) -> None:
        forget_live_pass(run)

    def stop_following(self, run: RedisRun) -> str:
        forget_live_pass(run)
        stopped = run.follower().stop()
        if isinstance(self.strategy(run), ReplicaOf):
            # A killed replicating worker left the target replicating the old source, its password set.
            stop_replicating(run.to_side.url)
        return "redis live copy stopped" if stopped else ""


def _listen_back(run: RedisRun) -> Follower:
    """The live copy back (the new Redis into the old one), launched unless running: no scan, the sides are
    equal inside the freeze, it only listens until the app writes to the new Redis."""
    back = run.reversed().follower()
    if not back.alive():
        back.launch(RedisLiveCopyJob(run.to_side.url, run.from_side.url, back.status_file, merge=True, scan=False))
    return back


def _which(run: RedisRun) -> str:
    """What the side writes stop on is called: the source, or the new Redis a rollback freezes."""
    return "the new" if run.back else "source"


def forget_live_pass(run: RedisRun) -> None:
    """The live pass (if this process made one) no longer stands: its witnesses stop listening."""
    live = _LIVE_PASSES.pop(run.follower().status_file, None)
    if live is not None:
        live.close()


def _without_certificate_check(url: str) -> str:
    """The source's own URL told to accept any certificate: Heroku Redis presents a self-signed
    one. Only the source: the target's certificate is still verified."""
    if not url.startswith("rediss://"):
        return url
    return url + ("&" if "?" in url else "?") + "ssl_cert_reqs=none"
