"""PostgreSQL: copy, verify, preflight, and change capture on the source."""

from migration.postgres.capture import (
    CaptureSettings,
    CaptureStatus,
    FollowOptions,
    FollowResult,
    InstallResult,
    capture_status,
    follow_changes,
    install_capture,
    remove_capture,
)
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
    "CaptureSettings",
    "CaptureStatus",
    "Check",
    "CopyOptions",
    "CopyResult",
    "DatabaseVerifyReport",
    "DumpFilters",
    "FollowOptions",
    "FollowResult",
    "InstallResult",
    "PgEndpoint",
    "PreflightReport",
    "SourceSnapshot",
    "TableResult",
    "capture_status",
    "copy_database",
    "follow_changes",
    "install_capture",
    "parse_url",
    "preflight_database",
    "remove_capture",
    "set_read_only",
    "target_is_empty",
    "verify_databases",
]
