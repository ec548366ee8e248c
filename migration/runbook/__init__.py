"""The runbook: ``ferry run`` phases, their state and lock, and ``ferry rollback``."""

from migration.runbook.context import RunSettings
from migration.runbook.run import PHASES, RunReport, rollback, run

__all__ = ["PHASES", "RunReport", "RunSettings", "rollback", "run"]
