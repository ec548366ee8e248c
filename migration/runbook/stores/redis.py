"""Redis in the runbook: a live copy in the background from ``copy`` on, drained in ``final-sync``."""

from __future__ import annotations

from migration.errors import PreconditionError
from migration.preflight import PreflightReport
from migration.redis import (
    RedisCopyOptions,
    can_pause_writes,
    copy_redis,
    pause_writes,
    preflight_redis,
    resume_writes,
    verify_redis,
)
from migration.runbook.context import RunContext, Sources, Targets
from migration.runbook.follower import Follower, FollowerStatus
from migration.runbook.stores.base import ProgressFor, Store, StoreVerify
from migration.worker import RedisLiveCopyJob

__all__ = ["RedisStore"]

_SCAN_TIMEOUT_SECONDS = 6 * 3600
_DRAIN_TIMEOUT_SECONDS = 600


class RedisStore(Store):
    name = "redis"

    def moves(self, ctx: RunContext, sources: Sources) -> bool:
        return ctx.moves_redis and sources.redis_url is not None

    def follower(self, ctx: RunContext) -> Follower:
        return Follower(self.name, ctx.settings.state_dir, self.state(ctx).follower, ctx.save)

    def preflight(self, ctx: RunContext, sources: Sources, targets: Targets) -> PreflightReport:
        assert sources.redis_url is not None and targets.redis_url is not None
        return preflight_redis(sources.redis_url, targets.redis_url, tls_skip_verify=False)

    def check_freeze(self, ctx: RunContext, sources: Sources) -> None:
        freeze = ctx.config.migration.freeze
        if freeze not in ("read-only", "fence") or not sources.redis_url:
            return
        reason = can_pause_writes(sources.redis_url)
        if reason is not None:
            raise PreconditionError(f"freeze {freeze}: {reason}; use migration.freeze: maintenance", side="source")

    def copy_live(self, ctx: RunContext, sources: Sources, targets: Targets) -> str:
        follower = self.follower(ctx)
        if follower.alive():
            return f"redis: live copy already running (pid {follower.pid})"
        assert sources.redis_url is not None and targets.redis_url is not None
        # A crashed earlier attempt may have copied part of it: same-named keys are replaced.
        job = RedisLiveCopyJob(
            sources.redis_url, targets.redis_url, follower.status_file, merge=ctx.state.phases["copy"].attempts > 1
        )
        pid = follower.start(job, ready_phase="live", timeout=_SCAN_TIMEOUT_SECONDS)
        return f"redis: scan done, following live writes (pid {pid})"

    def live_status(self, ctx: RunContext) -> FollowerStatus | None:
        return self.follower(ctx).status()

    def freeze_writes(self, ctx: RunContext, sources: Sources) -> str:
        assert sources.redis_url is not None
        pause_writes(sources.redis_url)
        return "source Redis writes paused"

    def unfreeze_writes(self, ctx: RunContext, sources: Sources) -> str:
        assert sources.redis_url is not None
        resume_writes(sources.redis_url)
        return "source Redis writes resumed"

    def final_sync(self, ctx: RunContext, sources: Sources, targets: Targets, progress_for: ProgressFor) -> str:
        follower = self.follower(ctx)
        was_running = follower.alive()
        if follower.drain(_DRAIN_TIMEOUT_SECONDS):
            return "redis: live copy drained and stopped"
        if was_running:
            ctx.say(f"redis live copy ended without draining ({follower.last_line()}); copying again inside the freeze")
        # No live copy to stop (it died, a crash took it, or a failed verify unfroze the app): writes
        # are frozen, so emptying the target (ours since the preflight found it empty) and copying
        # again is exact, where a merge would keep keys the source has deleted since.
        assert sources.redis_url is not None and targets.redis_url is not None
        options = RedisCopyOptions(source_url=sources.redis_url, target_url=targets.redis_url, flush_target=True)
        progress = progress_for("keys")
        try:
            result = copy_redis(options, progress)
        finally:
            progress.close()
        return f"redis: copied {result.keys.copied} keys inside the freeze"

    def verify(self, ctx: RunContext, sources: Sources, targets: Targets) -> list[StoreVerify]:
        assert sources.redis_url is not None and targets.redis_url is not None
        report = verify_redis(sources.redis_url, targets.redis_url, tls_skip_verify=False)
        return [StoreVerify.of("redis", report)]

    def stop_following(self, ctx: RunContext) -> str:
        return "redis live copy stopped" if self.follower(ctx).stop() else ""
