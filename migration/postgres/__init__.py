"""PostgreSQL: copy, verify and preflight."""

from migration.postgres.conninfo import PgEndpoint, parse_url
from migration.postgres.copy import copy_database
from migration.postgres.model import CopyOptions, CopyResult, TableResult
from migration.postgres.preflight import preflight
from migration.postgres.schema import DumpFilters
from migration.postgres.snapshot import SourceSnapshot
from migration.postgres.verify import Difference, VerifyReport, verify_databases
from migration.preflight import Check, PreflightReport

__all__ = [
    "Check",
    "CopyOptions",
    "CopyResult",
    "Difference",
    "DumpFilters",
    "PgEndpoint",
    "PreflightReport",
    "SourceSnapshot",
    "TableResult",
    "VerifyReport",
    "copy_database",
    "parse_url",
    "preflight",
    "verify_databases",
]
