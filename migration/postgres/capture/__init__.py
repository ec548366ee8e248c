"""Change capture on a PostgreSQL source: triggers that log which keys changed.

Heroku Postgres offers no logical replication to customers, so capture is trigger-based:
``install`` puts a row trigger and a TRUNCATE trigger on every table with a key, ``status``
reports the log, ``remove`` leaves the source as it was; ``apply_batch`` brings one batch of
the log to the target, ``sync_sequences`` every sequence's state; ``verify_live`` checks the
whole target while the app writes and ``verify_changes`` what changed since, inside the freeze.
"""

from migration.postgres.capture.apply import (
    ApplyResult,
    apply_batch,
    copy_keyless_tables,
    prepare_target,
    sync_sequences,
)
from migration.postgres.capture.constraints import forget_follow, restore_constraints, validate_constraints
from migration.postgres.capture.fence import FenceResult, drain_to_marker, lower_fence, raise_fence
from migration.postgres.capture.follow import FollowOptions, FollowResult, follow_changes
from migration.postgres.capture.install import CaptureSettings, InstallResult, install_capture, remove_capture
from migration.postgres.capture.largeobjects import large_object_count, sync_large_objects
from migration.postgres.capture.status import CaptureStatus, capture_status
from migration.postgres.capture.tables import CaptureTable, capture_tables
from migration.postgres.capture.verify import DeferredRange, LiveVerifyResult, verify_changes, verify_live

__all__ = [
    "ApplyResult",
    "CaptureSettings",
    "CaptureStatus",
    "CaptureTable",
    "DeferredRange",
    "FenceResult",
    "FollowOptions",
    "FollowResult",
    "InstallResult",
    "LiveVerifyResult",
    "apply_batch",
    "capture_status",
    "capture_tables",
    "copy_keyless_tables",
    "drain_to_marker",
    "follow_changes",
    "forget_follow",
    "install_capture",
    "large_object_count",
    "lower_fence",
    "prepare_target",
    "raise_fence",
    "remove_capture",
    "restore_constraints",
    "sync_large_objects",
    "sync_sequences",
    "validate_constraints",
    "verify_changes",
    "verify_live",
]
