"""The runbook: ``ferry run`` phases, their state and lock, ``ferry rollback``, ``ferry finish`` and ``ferry status``."""

from migration.runbook.context import RunSettings
from migration.runbook.run import PHASES, RunReport, finish, rollback, run
from migration.runbook.status import StatusReport, status

__all__ = ["PHASES", "RunReport", "RunSettings", "StatusReport", "finish", "rollback", "run", "status"]
