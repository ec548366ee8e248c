"""Change capture on a PostgreSQL source: triggers that log which keys changed.

Heroku Postgres offers no logical replication to customers, so capture is trigger-based:
``install`` puts a row trigger on every table with a key and a statement trigger on every
table (TRUNCATE logged, the fence's refusal), ``status`` reports the log and whether capture
still covers every table, ``remove`` leaves the source as it was; ``apply_batch`` brings one
batch of the log to the target, ``sync_sequences`` every sequence's state; ``verify_live``
checks the whole target while the app writes, ``verify_changes`` what changed since, inside the
freeze, and ``verify_frozen`` the witness the fence took: that nothing changed past the log.
"""

from migration.postgres.capture.apply import (
    ApplyResult,
    apply_batch,
    copy_keyless_tables,
    prepare_target,
    sync_sequences,
)
from migration.postgres.capture.changes import verify_changes
from migration.postgres.capture.constraints import (
    await_validation,
    forget_follow,
    restore_constraints,
    validate_constraints,
)
from migration.postgres.capture.fence import FenceResult, drain_to_marker, lower_fence, raise_fence
from migration.postgres.capture.follow import FollowOptions, FollowResult, follow_changes
from migration.postgres.capture.handover import FrozenDrain, await_copied_constraints, drain_frozen
from migration.postgres.capture.install import (
    CaptureSettings,
    InstallResult,
    ensure_capture,
    install_capture,
    remove_capture,
)
from migration.postgres.capture.inventory import capture_problems
from migration.postgres.capture.large_object_sync import large_object_count, sync_large_objects
from migration.postgres.capture.passage import new_salt, passage_digest, passage_token, with_passage
from migration.postgres.capture.proof import verify_frozen
from migration.postgres.capture.reverse import (
    BackOrigin,
    begin_follow_back,
    end_follow_back,
    fence_with_passage,
    open_follow_back,
)
from migration.postgres.capture.status import CaptureStatus, capture_status
from migration.postgres.capture.tables import CaptureTable, capture_tables
from migration.postgres.capture.verify import (
    DeferredRange,
    LiveVerifyResult,
    refuse_schema_changes,
    verify_live,
)
from migration.postgres.capture.witness import Witness, read_identity, take_witness
from migration.postgres.footprint import capture_schemas, our_trigger_oids

__all__ = [
    "ApplyResult",
    "BackOrigin",
    "CaptureSettings",
    "CaptureStatus",
    "CaptureTable",
    "DeferredRange",
    "FenceResult",
    "FollowOptions",
    "FollowResult",
    "FrozenDrain",
    "InstallResult",
    "LiveVerifyResult",
    "Witness",
    "apply_batch",
    "await_copied_constraints",
    "await_validation",
    "begin_follow_back",
    "capture_problems",
    "capture_schemas",
    "capture_status",
    "capture_tables",
    "copy_keyless_tables",
    "drain_frozen",
    "drain_to_marker",
    "end_follow_back",
    "ensure_capture",
    "fence_with_passage",
    "follow_changes",
    "forget_follow",
    "install_capture",
    "large_object_count",
    "lower_fence",
    "new_salt",
    "open_follow_back",
    "our_trigger_oids",
    "passage_digest",
    "passage_token",
    "prepare_target",
    "raise_fence",
    "read_identity",
    "refuse_schema_changes",
    "remove_capture",
    "restore_constraints",
    "sync_large_objects",
    "sync_sequences",
    "take_witness",
    "validate_constraints",
    "verify_changes",
    "verify_frozen",
    "verify_live",
    "with_passage",
]
