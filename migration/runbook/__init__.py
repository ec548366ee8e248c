"""The runbook: ``ferry run`` phases, their state and lock, ``ferry rollback`` and ``ferry status``."""

from migration.runbook.context import RunSettings
from migration.runbook.run import PHASES, RunReport, rollback, run
from migration.runbook.status import StatusReport, status

__all__ = ["PHASES", "RunReport", "RunSettings", "StatusReport", "rollback", "run", "status"]
