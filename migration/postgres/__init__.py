"""PostgreSQL: copy, verify, preflight, and change capture on the source."""

from migration.postgres.capture import (
    CaptureSettings,
    CaptureStatus,
    DeferredRange,
    FollowOptions,
    FollowResult,
    InstallResult,
    LiveVerifyResult,
    apply_batch,
    capture_status,
    copy_keyless_tables,
    drain_to_marker,
    follow_changes,
    forget_follow,
    install_capture,
    large_object_count,
    lower_fence,
    raise_fence,
    remove_capture,
    restore_constraints,
    sync_large_objects,
    sync_sequences,
    validate_constraints,
    verify_changes,
    verify_live,
)
from migration.postgres.conninfo import PgEndpoint, parse_url
from migration.postgres.copy import copy_database
from migration.postgres.freeze import capture_errors, connect_source, connect_target, set_read_only, target_is_empty
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
    "DeferredRange",
    "DumpFilters",
    "FollowOptions",
    "FollowResult",
    "InstallResult",
    "LiveVerifyResult",
    "PgEndpoint",
    "PreflightReport",
    "SourceSnapshot",
    "TableResult",
    "apply_batch",
    "capture_errors",
    "capture_status",
    "connect_source",
    "connect_target",
    "copy_database",
    "copy_keyless_tables",
    "drain_to_marker",
    "follow_changes",
    "forget_follow",
    "install_capture",
    "large_object_count",
    "lower_fence",
    "parse_url",
    "preflight_database",
    "raise_fence",
    "remove_capture",
    "restore_constraints",
    "set_read_only",
    "sync_large_objects",
    "sync_sequences",
    "target_is_empty",
    "validate_constraints",
    "verify_changes",
    "verify_databases",
    "verify_live",
]
