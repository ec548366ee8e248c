"""Background workers as library entry points: typed jobs, run by ``python -m migration.worker``.

The runbook starts its live copies (the PostgreSQL follow, the live Redis copy) as worker
processes: :data:`WORKER_COMMAND`, with the job's JSON (:func:`job_to_json`) on stdin. A container
task runs the same entry point with the job in ``FERRY_JOB``. No user-facing command, and no
hidden flag of one, is part of this.
"""

from __future__ import annotations

import sys

from migration.worker.jobs import (
    Job,
    PostgresCopyHelperJob,
    PostgresFollowJob,
    RedisLiveCopyJob,
    RunPhasesJob,
    S3FollowJob,
    job_from_json,
    job_to_json,
)
from migration.worker.runner import run_job, stop_on_signals

__all__ = [
    "WORKER_COMMAND",
    "WORKER_MODULE",
    "Job",
    "PostgresCopyHelperJob",
    "PostgresFollowJob",
    "RedisLiveCopyJob",
    "RunPhasesJob",
    "S3FollowJob",
    "job_from_json",
    "job_to_json",
    "run_job",
    "stop_on_signals",
]

#: The command that runs one job (read from stdin, or from ``FERRY_JOB`` when set).
#: The module a worker runs as: also how a worker is told from another process that took its number.
WORKER_MODULE = "migration.worker"
WORKER_COMMAND = (sys.executable, "-m", WORKER_MODULE)
