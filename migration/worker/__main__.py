"""``python -m migration.worker``: run the job given on stdin (or in ``FERRY_JOB``); one line on failure."""

from __future__ import annotations

import os
import sys

from migration.errors import FerryError
from migration.redact import redact
from migration.worker.jobs import job_from_json
from migration.worker.runner import run_job, stop_on_signals


def main() -> int:
    try:
        job = job_from_json(os.environ.get("FERRY_JOB") or sys.stdin.read())
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
