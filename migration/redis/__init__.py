"""Redis: copy (scan, live tail or replicaof), verify (whole, or in proportion to the changes with a witness), preflight,
and the read-only freeze."""

from migration.redis.changes import LiveRedisVerify, level_kept, verify_again_live, verify_changed, verify_live
from migration.redis.copy import RedisCopyOptions, RedisCopyResult, copy_redis
from migration.redis.freeze import can_pause_writes, pause_writes, resume_writes
from migration.redis.live import Lag, LiveTail, notifications_at
from migration.redis.preflight import preflight_redis
from migration.redis.replica import stop_replicating
from migration.redis.url import RedisEndpoint, parse_redis_url
from migration.redis.verify import RedisVerifyReport, verify_redis

__all__ = [
    "Lag",
    "LiveRedisVerify",
    "LiveTail",
    "RedisCopyOptions",
    "RedisCopyResult",
    "RedisEndpoint",
    "RedisVerifyReport",
    "can_pause_writes",
    "copy_redis",
    "level_kept",
    "notifications_at",
    "parse_redis_url",
    "pause_writes",
    "preflight_redis",
    "resume_writes",
    "stop_replicating",
    "verify_again_live",
    "verify_changed",
    "verify_live",
    "verify_redis",
]
