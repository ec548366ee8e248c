"""Redis: copy (scan, live tail, replicaof), verify and preflight."""

from migration.redis.copy import RedisCopyOptions, RedisCopyResult, copy_redis
from migration.redis.live import Lag, LiveTail
from migration.redis.url import RedisEndpoint, parse_redis_url

__all__ = ["Lag", "LiveTail", "RedisCopyOptions", "RedisCopyResult", "RedisEndpoint", "copy_redis", "parse_redis_url"]
