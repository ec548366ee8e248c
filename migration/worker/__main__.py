"""``python -m migration.worker``: run the job given on stdin (or in ``FERRY_JOB``); one line on failure."""

from __future__ import annotations

import os
import sys

from migration.errors import FerryError
from migration.redact import redact
from migration.runner.base import EXIT_LINE, TASK_ID_ENV
from migration.worker.jobs import job_from_json
from migration.worker.runner import run_job, stop_on_signals


def main() -> int:
    # Taken out of the environment: the workers this task starts in turn read theirs from stdin, and are no
    # task of a runner's (one that took this task's pid after it must not pass for it).
    task_job = os.environ.pop("FERRY_JOB", None)
    os.environ.pop(TASK_ID_ENV, None)
    code = _run(task_job)
    if task_job is not None:
        # A task's last line says how it ended: its runner relays that, whatever the platform reports.
        print(f"{EXIT_LINE}{code}", file=sys.stderr, flush=True)
    return code


def _run(task_job: str | None) -> int:
    try:
        job = job_from_json(task_job if task_job is not None else sys.stdin.read())
        with stop_on_signals() as stop:
            print(run_job(job, stop), file=sys.stderr)
    except FerryError as exc:
        print(redact(f"ferry: error: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("ferry: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
