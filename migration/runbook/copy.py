"""Phases ``copy`` (while the app is live) and ``final-sync`` (inside the freeze).

Redis: ``copy`` starts ``ferry redis copy --live`` as a child that outlives the phase, and
``final-sync`` asks it to stop and drain once writes are frozen. S3: a full sync while live,
an incremental one inside the freeze. PostgreSQL: until change capture lands, the whole copy
runs in ``final-sync``, inside the freeze, so no write is lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from migration.errors import FollowerError, ResumeError
from migration.progress import PlainProgress, ProgressSink, make_progress
from migration.runbook.context import RunContext, Sources, Targets
from migration.runbook.parallel import side_by_side
from migration.runbook.preflight import check_targets

__all__ = ["copy_live", "final_sync", "stop_live_copy"]

_SCAN_TIMEOUT_SECONDS = 6 * 3600
_DRAIN_TIMEOUT_SECONDS = 600


ProgressFor = Callable[[str], ProgressSink]


def _progress_for(stores: int) -> ProgressFor:
    """One terminal holds one live display: stores moving side by side report in plain lines."""
    if stores > 1:
        return lambda unit: PlainProgress(unit=unit)
    return lambda unit: make_progress(unit=unit)


def copy_live(ctx: RunContext) -> str:
    if not ctx.state.facts.get("targets_checked"):
        # A target the stack built a moment ago is checked here, while the app still runs.
        check_targets(ctx, copying_began=ctx.state.phases["copy"].attempts > 1)
    sources, targets = ctx.sources(), ctx.targets()
    tasks: dict[str, Callable[[], str]] = {}
    if ctx.moves_redis and sources.redis_url and targets.redis_url:
        tasks["redis"] = lambda: _start_redis_tail(ctx, sources, targets)
    if targets.buckets:
        # The live Redis copy reports to its log file: S3 has the terminal to itself.
        tasks["s3"] = lambda: _sync_buckets(targets, _progress_for(1))
    done = list(side_by_side(tasks).values())
    if ctx.config.migration.postgres:
        done.append("postgres: copied inside the freeze (no change capture yet)")
    return "; ".join(done) or "nothing to copy while live"


def final_sync(ctx: RunContext) -> str:
    sources, targets = ctx.sources(), ctx.targets()
    redis = ctx.moves_redis and sources.redis_url is not None and targets.redis_url is not None
    progress = _progress_for(redis + bool(targets.buckets) + ctx.config.migration.postgres)
    tasks: dict[str, Callable[[], str]] = {}
    if redis:
        tasks["redis"] = lambda: _stop_redis_tail(ctx, sources, targets, progress)
    if targets.buckets:
        tasks["s3"] = lambda: _sync_buckets(targets, progress)
    if ctx.config.migration.postgres:
        tasks["postgres"] = lambda: _copy_postgres(ctx, sources, targets, progress)
    return "; ".join(side_by_side(tasks).values()) or "nothing to copy"


# -- Redis ------------------------------------------------------------------------------------------
def _live_files(ctx: RunContext) -> tuple[Path, Path]:
    return ctx.settings.state_dir / "redis-live.json", ctx.settings.state_dir / "redis-live.log"


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished:
            return False
    except ChildProcessError:
        pass  # not our child (a previous run started it): ask the kernel instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _read_status(path: Path) -> dict[str, object]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()] if path.exists() else []
    return lines[-1] if lines else "no output"


def _start_redis_tail(ctx: RunContext, sources: Sources, targets: Targets) -> str:
    status_file, log_file = _live_files(ctx)
    if _alive(ctx.state.redis_live_pid):
        return f"redis: live copy already running (pid {ctx.state.redis_live_pid})"
    status_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "migration", "redis", "copy", "--live", "--status-file", str(status_file)]
    if ctx.state.phases["copy"].attempts > 1:
        command.append("--merge")  # a crashed earlier attempt may have copied part of it
    assert sources.redis_url is not None and targets.redis_url is not None
    # URLs through the environment: never on a command line other users can read.
    env = {**os.environ, "FERRY_REDIS_SOURCE_URL": sources.redis_url, "FERRY_REDIS_TARGET_URL": targets.redis_url}
    with open(log_file, "ab") as log:
        child = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    ctx.state.redis_live_pid = child.pid
    ctx.save()
    deadline = time.monotonic() + _SCAN_TIMEOUT_SECONDS
    while _read_status(status_file).get("phase") != "live":
        if child.poll() is not None:
            ctx.state.redis_live_pid = None
            ctx.save()
            raise FollowerError(f"redis live copy stopped: {_last_line(log_file)}")
        if time.monotonic() > deadline:
            raise FollowerError("redis live copy: the scan did not finish in time")
        time.sleep(0.2)
    return f"redis: scan done, following live writes (pid {child.pid})"


def stop_live_copy(ctx: RunContext) -> str:
    """Stop a running live Redis copy without waiting for it to drain (rollback)."""
    pid = ctx.state.redis_live_pid
    if not _alive(pid):
        return ""
    assert pid is not None
    os.kill(pid, signal.SIGTERM)
    ctx.state.redis_live_pid = None
    ctx.save()
    return "redis live copy stopped"


def _stop_redis_tail(ctx: RunContext, sources: Sources, targets: Targets, progress_for: ProgressFor) -> str:
    status_file, log_file = _live_files(ctx)
    pid = ctx.state.redis_live_pid
    if _alive(pid):
        assert pid is not None
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + _DRAIN_TIMEOUT_SECONDS
        while _alive(pid):
            if time.monotonic() > deadline:
                raise FollowerError(f"redis live copy (pid {pid}) did not drain in {_DRAIN_TIMEOUT_SECONDS} s")
            time.sleep(0.1)
        status = _read_status(status_file)
        ctx.state.redis_live_pid = None
        ctx.save()
        if status.get("phase") == "stopped" and status.get("consistent"):
            return "redis: live copy drained and stopped"
        ctx.say(f"redis live copy ended without draining ({_last_line(log_file)}); copying again inside the freeze")
    # No live copy to stop (it died, a crash took it, or a failed verify unfroze the app): writes
    # are frozen, so emptying the target (ours since the preflight found it empty) and copying
    # again is exact, where a merge would keep keys the source has deleted since.
    from migration.redis.copy import RedisCopyOptions, copy_redis

    assert sources.redis_url is not None and targets.redis_url is not None
    options = RedisCopyOptions(
        source_url=sources.redis_url,
        target_url=targets.redis_url,
        flush_target=True,
        tls_skip_verify=False,
    )
    progress = progress_for("keys")
    try:
        result = copy_redis(options, progress)
    finally:
        progress.close()
    return f"redis: copied {result.keys.copied} keys inside the freeze"


# -- S3 -----------------------------------------------------------------------------------------------
def _sync_buckets(targets: Targets, progress_for: ProgressFor) -> str:
    from migration.s3.client import S3Side
    from migration.s3.sync import SyncOptions, sync_buckets

    source_side, target_side = S3Side.from_env("source"), S3Side.from_env("target")
    done = []
    for source, target in targets.buckets.items():
        options = SyncOptions(
            source_url=f"s3://{source}", target_url=f"s3://{target}", source=source_side, target=target_side
        )
        progress = progress_for("objects")
        try:
            result = sync_buckets(options, progress)
        finally:
            progress.close()
        done.append(f"s3 {source} → {target}: {result.copied} copied")
    return "; ".join(done)


# -- PostgreSQL ---------------------------------------------------------------------------------------
def _copy_postgres(ctx: RunContext, sources: Sources, targets: Targets, progress_for: ProgressFor) -> str:
    from migration.postgres.copy import copy_database
    from migration.postgres.model import CopyOptions

    resume = ctx.state.postgres_copy_started
    ctx.state.postgres_copy_started = True
    ctx.save()
    jobs = ctx.settings.jobs or ctx.config.migration.jobs
    progress = progress_for("bytes")
    try:
        if ctx.state.postgres_recopy:
            # The app wrote to the source after an earlier final copy (a failed verify unfroze it):
            # that copy is stale, and the target holds nothing but it.
            result = copy_database(
                CopyOptions(source_url=sources.database_url, target_url=targets.database_url, jobs=jobs, clean=True),
                progress,
            )
            ctx.state.postgres_recopy = False
            ctx.save()
            return f"postgres: {result.rows} rows in {len(result.tables)} tables (copied again)"
        try:
            result = copy_database(
                CopyOptions(source_url=sources.database_url, target_url=targets.database_url, jobs=jobs, resume=resume),
                progress,
            )
        except ResumeError:
            # The previous attempt either never began writing or had finished: the target says which.
            if not _target_is_empty(targets.database_url):
                return "postgres: the copy had finished before the interruption (verify checks it)"
            result = copy_database(
                CopyOptions(source_url=sources.database_url, target_url=targets.database_url, jobs=jobs), progress
            )
    finally:
        progress.close()
    return f"postgres: {result.rows} rows in {len(result.tables)} tables" + (" (resumed)" if result.resumed else "")


def _target_is_empty(url: str) -> bool:
    from migration.postgres.connection import connect
    from migration.postgres.conninfo import parse_url
    from migration.postgres.target import describe_contents

    with connect(parse_url(url, "target"), autocommit=True) as conn:
        return not describe_contents(conn)
