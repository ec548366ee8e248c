"""S3: sync between buckets with separate credentials, and verify."""

from migration.s3.client import S3Location, S3Side, parse_location
from migration.s3.sync import SyncOptions, SyncResult, sync_buckets
from migration.s3.verify import S3VerifyReport, verify_buckets

__all__ = [
    "S3Location",
    "S3Side",
    "S3VerifyReport",
    "SyncOptions",
    "SyncResult",
    "parse_location",
    "sync_buckets",
    "verify_buckets",
]
