"""ferry: move an application's data stores onto AWS, verified and reversible.

The public names load on first use, so ``ferry s3 …`` does not pay for psycopg and
``ferry pg …`` does not pay for boto3.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from migration.errors import FerryError

if TYPE_CHECKING:
    from migration.postgres import CopyOptions, CopyResult, DumpFilters, SourceSnapshot, copy_database
    from migration.redis import RedisCopyOptions, RedisCopyResult, copy_redis
    from migration.runbook import RunReport, RunSettings, rollback, run
    from migration.s3 import SyncOptions, SyncResult, sync_buckets

__all__ = [
    "CopyOptions",
    "CopyResult",
    "DumpFilters",
    "FerryError",
    "RedisCopyOptions",
    "RedisCopyResult",
    "RunReport",
    "RunSettings",
    "SourceSnapshot",
    "SyncOptions",
    "SyncResult",
    "copy_database",
    "copy_redis",
    "rollback",
    "run",
    "sync_buckets",
]
__version__ = "0.1.0"

_HOMES = {
    "migration.postgres": ("CopyOptions", "CopyResult", "DumpFilters", "SourceSnapshot", "copy_database"),
    "migration.redis": ("RedisCopyOptions", "RedisCopyResult", "copy_redis"),
    "migration.s3": ("SyncOptions", "SyncResult", "sync_buckets"),
    "migration.runbook": ("RunReport", "RunSettings", "rollback", "run"),
}


def __getattr__(name: str) -> Any:
    for module, names in _HOMES.items():
        if name in names:
            return getattr(import_module(module), name)
    raise AttributeError(f"module 'migration' has no attribute {name!r}")
