"""PostgreSQL: copy, verify and preflight."""

from migration.postgres.conninfo import PgEndpoint, parse_url
from migration.postgres.copy import copy_database
from migration.postgres.freeze import set_read_only, target_is_empty
from migration.postgres.model import CopyOptions, CopyResult, TableResult
from migration.postgres.preflight import preflight_database
from migration.postgres.schema import DumpFilters
from migration.postgres.snapshot import SourceSnapshot
from migration.postgres.verify import DatabaseVerifyReport, verify_databases
from migration.preflight import Check, PreflightReport

__all__ = [
    "Check",
    "CopyOptions",
    "CopyResult",
    "DatabaseVerifyReport",
    "DumpFilters",
    "PgEndpoint",
    "PreflightReport",
    "SourceSnapshot",
    "TableResult",
    "copy_database",
    "parse_url",
    "preflight_database",
    "set_read_only",
    "target_is_empty",
    "verify_databases",
]
