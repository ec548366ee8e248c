"""The jobs a worker runs, typed, and their JSON form (how the runbook hands one to a worker process).

A job carries its URLs, so its JSON goes to the worker on stdin (or, for a container task, in
the ``FERRY_JOB`` environment variable its secrets store fills): never on a command line.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from migration.errors import UsageError

__all__ = ["Job", "PostgresFollowJob", "RedisLiveCopyJob", "S3FollowJob", "job_from_json", "job_to_json"]


@dataclass(frozen=True)
class PostgresFollowJob:
    """Apply the source's change log to the target until asked to stop, then at most one more batch.

    The target's foreign keys stay as the follow left them: the final sync puts them back.

    :param status_file: where the lag is written every second (``phase`` ``live`` once following).
    :param capture_schema: the schema capture was installed in on the source.
    :param max_log_bytes: the log's cap on the source's disk; over it, capture is removed.
    """

    source_url: str
    target_url: str
    status_file: Path
    capture_schema: str = "ferry_capture"
    batch: int = 5000
    max_log_bytes: int = 10 << 30

    kind = "postgres-follow"


@dataclass(frozen=True)
class RedisLiveCopyJob:
    """Scan-copy every database, then follow live writes until asked to stop, then drain; or, with
    *replicaof*, let the target replicate the source and promote it once caught up when asked to stop.

    :param merge: the target may hold keys already (an earlier attempt's): same-named keys are replaced.
    :param replicaof: replicate instead of scanning (a target that accepts ``REPLICAOF``).
    """

    source_url: str
    target_url: str
    status_file: Path
    merge: bool = False
    replicaof: bool = False
    jobs: int = 8
    batch: int = 1000
    #: ``False``: the sides are equal already (the follow back, begun inside the freeze): no scan first.
    scan: bool = True

    kind = "redis-live-copy"


@dataclass(frozen=True)
class S3FollowJob:
    """Sync each bucket pair, again every *interval* seconds, until asked to stop (then one last pass).

    Credentials come from the worker's environment (``FERRY_S3_SOURCE_*``, ``FERRY_S3_TARGET_*``), as for
    ``ferry s3 sync``; the job names buckets only.

    :param pairs: (old bucket, new bucket) pairs. :param ledger_dir: where each pair's ledger is kept.
    """

    pairs: list[list[str]]
    status_file: Path
    ledger_dir: str
    interval: float = 2.0
    jobs: int = 16

    kind = "s3-follow"


Job = PostgresFollowJob | RedisLiveCopyJob | S3FollowJob
_KINDS: dict[str, type[PostgresFollowJob] | type[RedisLiveCopyJob] | type[S3FollowJob]] = {
    PostgresFollowJob.kind: PostgresFollowJob,
    RedisLiveCopyJob.kind: RedisLiveCopyJob,
    S3FollowJob.kind: S3FollowJob,
}


def job_to_json(job: Job) -> str:
    """*job* as one JSON object with its ``kind``."""
    fields = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(job).items()}
    return json.dumps({"kind": job.kind, **fields})


def job_from_json(text: str) -> Job:
    """The job *text* describes. :raises UsageError: not a job this worker knows, or a field missing or wrong."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        raise UsageError("worker: the job is not JSON") from None
    if not isinstance(data, dict):
        raise UsageError("worker: the job is not a JSON object")
    kind = data.pop("kind", None)
    cls = _KINDS.get(str(kind))
    if cls is None:
        raise UsageError(f"worker: unknown job kind {kind!r} (known: {', '.join(sorted(_KINDS))})")
    status = data.get("status_file")
    if not isinstance(status, str) or not status:
        raise UsageError(f"worker: {kind} job: status_file must be a path")
    data["status_file"] = Path(status)
    try:
        job = cls(**data)
    except TypeError as exc:
        raise UsageError(f"worker: {kind} job: {exc}") from None
    _check(job)
    return job


def _check(job: Job) -> None:
    if isinstance(job, S3FollowJob):
        _check_s3(job)
        return
    for name in ("source_url", "target_url"):
        value = getattr(job, name)
        if not isinstance(value, str) or not value:
            raise UsageError(f"worker: {job.kind} job: {name} must be a non-empty string")
    for name in ("batch", "jobs", "max_log_bytes"):
        value = getattr(job, name, 1)
        if type(value) is not int or value < 1:
            raise UsageError(f"worker: {job.kind} job: {name} must be a positive integer")
    for flag in ("merge", "replicaof"):
        if isinstance(job, RedisLiveCopyJob) and type(getattr(job, flag)) is not bool:
            raise UsageError(f"worker: {job.kind} job: {flag} must be true or false")


def _check_s3(job: S3FollowJob) -> None:
    pairs = job.pairs
    if (
        not isinstance(pairs, list)
        or not pairs
        or not all(
            isinstance(pair, list) and len(pair) == 2 and all(isinstance(b, str) and b for b in pair) for pair in pairs
        )
    ):
        raise UsageError(f"worker: {job.kind} job: pairs must be a list of [old bucket, new bucket]")
    if not isinstance(job.ledger_dir, str) or not job.ledger_dir:
        raise UsageError(f"worker: {job.kind} job: ledger_dir must be a path")
    if type(job.interval) not in (int, float) or not 0 < job.interval <= 3600:
        raise UsageError(f"worker: {job.kind} job: interval must be a number of seconds up to 3600")
    if type(job.jobs) is not int or not 0 < job.jobs <= 256:
        raise UsageError(f"worker: {job.kind} job: jobs must be a positive integer")
