"""The jobs a worker runs, typed, and their JSON form (how the runbook hands one to a worker process).

A job carries its URLs, so its JSON goes to the worker on stdin (or, for a container task, in
the ``FERRY_JOB`` environment variable its secrets store fills): never on a command line.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from migration.errors import UsageError
from migration.runner.base import ENV_REF

__all__ = [
    "Job",
    "PostgresCopyHelperJob",
    "PostgresFollowJob",
    "RedisLiveCopyJob",
    "RunPhasesJob",
    "S3FollowJob",
    "job_from_json",
    "job_to_json",
]


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
class PostgresCopyHelperJob:
    """Help a shared PostgreSQL copy into *target_url*: claim and copy parts of its plan until none is left.

    The leader (the copy run with ``CopyOptions.shared``) does the schema, the indexes and the rest; see
    :func:`migration.postgres.help_copy`.

    :param status_file: where the parts, rows and bytes copied so far are written.
    :param jobs: parallel COPY streams.
    :param wait_seconds: how long to wait for the leader's plan to appear on the target.
    """

    source_url: str
    target_url: str
    status_file: Path
    jobs: int = 4
    wait_seconds: float = 600.0

    kind = "postgres-copy-helper"


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


@dataclass(frozen=True)
class RunPhasesJob:
    """Run phases of a stack's runbook, in order, as ``ferry run`` would (a data-plane task of ``--runner``).

    The job names no secret: its settings and the stack's outputs say ``env:NAME`` wherever a URL or key
    goes, and the task's environment holds ``NAME``.

    :param stack_file: the text of ``Pulumi.<stack>.yaml`` (the task has no checkout to read it from).
    :param phases: the phases to run, in order; the run's state is read from and written to *state_dir*.
    :param settings: ``RunSettings`` fields (without ``stack``, ``root``, ``state_dir``).
    :param outputs: the stack's outputs, for a run with a stack (``None``: its targets are given as URLs).
    """

    stack: str
    stack_file: str
    phases: list[str]
    settings: dict[str, Any]
    state_dir: str
    status_file: Path
    outputs: dict[str, Any] | None = None
    #: The stack file and the outputs are in the run's state bucket (``job-data.json``), not here: ECS takes
    #: 8 KiB of overrides at most.
    in_state: bool = False
    #: After its phases the task keeps the follow back's workers running, until the caller asks for a rollback
    #: or ``finish`` (an ECS task's processes end with it).
    keep: bool = False

    kind = "run-phases"


Job = PostgresFollowJob | PostgresCopyHelperJob | RedisLiveCopyJob | S3FollowJob | RunPhasesJob
_KINDS: dict[str, type[Job]] = {
    PostgresFollowJob.kind: PostgresFollowJob,
    PostgresCopyHelperJob.kind: PostgresCopyHelperJob,
    RedisLiveCopyJob.kind: RedisLiveCopyJob,
    S3FollowJob.kind: S3FollowJob,
    RunPhasesJob.kind: RunPhasesJob,
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
    for name in ("source_url", "target_url"):
        value = data.get(name)
        if isinstance(value, str) and value.startswith(ENV_REF):
            # A task's job names the variable its secret is in (an ECS secret), never the URL itself.
            variable = value.removeprefix(ENV_REF)
            if not os.environ.get(variable):
                raise UsageError(f"worker: {kind} job: {name} names {variable}, which its environment does not hold")
            data[name] = os.environ[variable]
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
    if isinstance(job, RunPhasesJob):
        _check_phases(job)
        return
    for name in ("source_url", "target_url"):
        value = getattr(job, name)
        if not isinstance(value, str) or not value:
            raise UsageError(f"worker: {job.kind} job: {name} must be a non-empty string")
    for name in ("batch", "jobs", "max_log_bytes"):
        value = getattr(job, name, 1)
        if type(value) is not int or value < 1:
            raise UsageError(f"worker: {job.kind} job: {name} must be a positive integer")
    if isinstance(job, PostgresCopyHelperJob) and (
        type(job.wait_seconds) not in (int, float) or not 0 < job.wait_seconds <= 86400
    ):
        raise UsageError(f"worker: {job.kind} job: wait_seconds must be a number of seconds up to 86400")
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


def _check_phases(job: RunPhasesJob) -> None:
    for name in ("stack", "state_dir", *(() if job.in_state else ("stack_file",))):
        if not isinstance(getattr(job, name), str) or not getattr(job, name):
            raise UsageError(f"worker: {job.kind} job: {name} must be a non-empty string")
    if not isinstance(job.phases, list) or not job.phases or not all(isinstance(p, str) for p in job.phases):
        raise UsageError(f"worker: {job.kind} job: phases must be a list of phase names")
    if not isinstance(job.settings, dict) or not (job.outputs is None or isinstance(job.outputs, dict)):
        raise UsageError(f"worker: {job.kind} job: settings and outputs must be JSON objects")
