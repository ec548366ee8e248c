"""S3: sync between buckets with separate credentials, and verify."""

from migration.s3.aftersync import AfterSwitchResult, AfterSwitchVerify, sync_after_switch, verify_after_switch
from migration.s3.client import S3Location, S3Side, parse_location
from migration.s3.follow import FollowedBuckets, follow_buckets, hold_path, ledger_path
from migration.s3.ledger import Ledger
from migration.s3.sync import SyncOptions, SyncResult, sync_buckets
from migration.s3.verify import S3VerifyReport, verify_buckets

__all__ = [
    "AfterSwitchResult",
    "AfterSwitchVerify",
    "FollowedBuckets",
    "Ledger",
    "S3Location",
    "S3Side",
    "S3VerifyReport",
    "SyncOptions",
    "SyncResult",
    "follow_buckets",
    "hold_path",
    "ledger_path",
    "parse_location",
    "sync_after_switch",
    "sync_buckets",
    "verify_after_switch",
    "verify_buckets",
]
