"""Running one job in this process: the library calls the job names, stopped by SIGTERM or Ctrl-C.

The first signal asks the job to end as it would choose (the follow: at most one more batch; the
live Redis copy: drain); a second one stops at once (what is in flight rolls back, the log keeps it).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from migration.postgres import CaptureSettings, FollowOptions, follow_changes, help_copy
from migration.progress import ProgressSink, make_progress
from migration.redis import RedisCopyOptions, copy_redis
from migration.worker.jobs import (
    Job,
    PostgresCopyHelperJob,
    PostgresFollowJob,
    RedisLiveCopyJob,
    RunPhasesJob,
    S3FollowJob,
)

__all__ = ["run_job", "stop_on_signals"]

R = TypeVar("R")


@contextmanager
def stop_on_signals() -> Iterator[Callable[[], bool]]:
    """Yields ``stop()``: true once SIGINT or SIGTERM came; a second one raises KeyboardInterrupt."""
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop.is_set
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_job(job: Job, stop: Callable[[], bool]) -> str:
    """Run *job* until *stop* says so (or it fails); a line saying what it did."""
    if isinstance(job, RunPhasesJob):
        from migration.runbook.intask import run_phases_job

        return run_phases_job(job, lambda line: print(line, file=sys.stderr, flush=True), stop)
    if isinstance(job, PostgresFollowJob):
        options = FollowOptions(
            job.source_url,
            job.target_url,
            CaptureSettings(schema=job.capture_schema),
            batch=job.batch,
            status_file=job.status_file,
            max_log_bytes=job.max_log_bytes,
        )
        followed = _with_progress("rows", lambda progress: follow_changes(options, progress, stop))
        return f"postgres follow: applied {followed.entries} entries in {followed.batches} batches"
    if isinstance(job, PostgresCopyHelperJob):
        helped = _with_progress("bytes", lambda progress: help_copy(
            job.source_url, job.target_url, jobs=job.jobs, progress=progress, stop=stop,
            wait_seconds=job.wait_seconds, status_file=job.status_file,
        ))  # fmt: skip
        return f"postgres copy helper: {helped.parts} parts, {helped.rows} rows copied"
    if isinstance(job, S3FollowJob):
        from migration.s3 import S3Side, follow_buckets

        pairs = [(old, new) for old, new in job.pairs]
        buckets = _with_progress("objects", lambda progress: follow_buckets(
            pairs, S3Side.from_env("source"), S3Side.from_env("target"), Path(job.ledger_dir), job.status_file,
            progress, stop, interval=job.interval, jobs=job.jobs,
        ))  # fmt: skip
        return f"s3 follow: {buckets.copied} objects copied in {buckets.passes} passes"
    assert isinstance(job, RedisLiveCopyJob)
    copy_options = RedisCopyOptions(
        source_url=job.source_url,
        target_url=job.target_url,
        jobs=job.jobs,
        batch=job.batch,
        live=not job.replicaof,
        replicaof=job.replicaof,
        merge=job.merge,
        scan=job.scan,
        status_file=job.status_file,
    )
    copied = _with_progress("keys", lambda progress: copy_redis(copy_options, progress, stop))
    if job.replicaof:
        return f"redis replica: {sum(copied.databases.values())} keys, promoted"
    return f"redis live copy: {copied.keys.copied} keys, then {copied.live_copied} re-copied live"


def _with_progress(unit: str, work: Callable[[ProgressSink], R]) -> R:
    progress = make_progress(unit=unit)
    try:
        return work(progress)
    finally:
        progress.close()
