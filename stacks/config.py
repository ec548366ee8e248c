"""The stack's typed configuration, as the Pulumi program's components use it.

The models and the ``Pulumi.<env>.yaml`` reader live in :mod:`migration.stackconfig`
(no Pulumi there, so the driver loads them cheaply); this module names them for the
program. ``stacks`` depends on ``migration``, never the other way round.
"""

from migration.stackconfig import (
    CUTOVER_STATES,
    PROJECT,
    BucketConfig,
    CacheConfig,
    CutoverState,
    DatabaseConfig,
    HerokuConfig,
    MigrationConfig,
    MovedAddon,
    NetworkConfig,
    PeeringConfig,
    StackConfig,
    StorageConfig,
    from_pulumi,
    load_stack_file,
    stack_file,
)

__all__ = [
    "CUTOVER_STATES",
    "PROJECT",
    "BucketConfig",
    "CacheConfig",
    "CutoverState",
    "DatabaseConfig",
    "HerokuConfig",
    "MigrationConfig",
    "MovedAddon",
    "NetworkConfig",
    "PeeringConfig",
    "StackConfig",
    "StorageConfig",
    "from_pulumi",
    "load_stack_file",
    "stack_file",
]
