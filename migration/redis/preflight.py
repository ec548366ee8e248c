"""``ferry redis preflight``: will the copy work, and what will it cost the target?"""

from __future__ import annotations

from migration.errors import FerryError
from migration.preflight import SAME_STORE_CHECK, PreflightReport
from migration.redis.connection import RespConn
from migration.redis.identity import same_server
from migration.redis.info import info, keyspace, version
from migration.redis.live import HEROKU_HINT, notifications_enabled, notifications_status
from migration.redis.url import parse_redis_pair

__all__ = ["preflight_redis"]

# Measured by bench/redis_copy.py on 2 cores (bench/RESULTS.md), rounded down.
KEYS_PER_SECOND = 100_000


def _modules(conn: RespConn) -> set[str]:
    return {
        value.split(",")[0].removeprefix("name=")
        for key, value in info(conn, "modules").items()
        if key.startswith("module")
    }


def _memory(conn: RespConn) -> tuple[int, int, str]:
    memory = info(conn, "memory")
    return int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0)), memory.get("maxmemory_policy", "?")


def _fmt(version_tuple: tuple[int, ...]) -> str:
    return ".".join(map(str, version_tuple))


def preflight_redis(source_url: str, target_url: str, *, tls_skip_verify: bool = False) -> PreflightReport:
    """Check both servers; connection failures are failed checks, so one run lists every problem."""
    source, target = parse_redis_pair(source_url, target_url, tls_skip_verify=tls_skip_verify)
    report = PreflightReport()
    try:
        src = RespConn(source)
    except FerryError as exc:
        report.add("source server", "fail", str(exc))
        return report
    with src:
        src_version = version(src)
        report.add("source server", "ok", f"Redis {_fmt(src_version)} at {source.display}")
        dbs = keyspace(src)
        keys = sum(dbs.values())
        used, _, _ = _memory(src)
        report.source_bytes, report.tables = used, len(dbs)
        report.add("source keys", "ok", ", ".join(f"db{db}: {n}" for db, n in sorted(dbs.items())) or "empty")
        src_modules = _modules(src)
        flags = notifications_status(src)
        if flags is None:
            report.add(
                "keyspace notifications", "warn", f"cannot read them (CONFIG refused); --live needs KEA: {HEROKU_HINT}"
            )
        elif notifications_enabled(flags):
            report.add("keyspace notifications", "ok", f"notify-keyspace-events={flags}")
        else:
            report.add(
                "keyspace notifications",
                "warn",
                f"off ({flags!r}): --live needs CONFIG SET notify-keyspace-events KEA (Heroku: {HEROKU_HINT})",
            )
        report.estimated_seconds = keys / KEYS_PER_SECOND
    try:
        dst = RespConn(target)
    except FerryError as exc:
        report.add("target server", "fail", str(exc))
        return report
    with dst:
        dst_version = version(dst)
        if src_version[:2] > dst_version[:2]:
            report.add(
                "target server",
                "warn",
                f"Redis {_fmt(dst_version)} is older than the source: DUMP payloads "
                "will not restore, keys are copied element by element (slower)",
            )
        else:
            report.add("target server", "ok", f"Redis {_fmt(dst_version)} at {target.display}")
        _, maxmemory, policy = _memory(dst)
        if maxmemory and used > maxmemory * 0.9:
            report.add("target memory", "fail", f"source uses {used} bytes, target maxmemory is {maxmemory}")
        else:
            report.add(
                "target memory",
                "ok",
                f"source uses {used} bytes; target maxmemory " + (str(maxmemory) if maxmemory else "unlimited"),
            )
        if maxmemory and policy != "noeviction":
            report.add("eviction policy", "warn", f"target evicts keys under pressure ({policy}): keys may vanish")
        else:
            report.add("eviction policy", "ok", policy)
        missing = sorted(src_modules - _modules(dst))
        if missing:
            report.add("modules", "fail", f"the target lacks module(s) the source uses: {', '.join(missing)}")
        else:
            report.add("modules", "ok", ", ".join(sorted(src_modules)) or "none used")
        existing = keyspace(dst)
        if existing:
            report.add(
                "target empty",
                "fail",
                "not empty ("
                + ", ".join(f"db{d}: {n}" for d, n in sorted(existing.items()))
                + "); ferry redis copy --flush-target or --merge",
            )
        else:
            report.add("target empty", "ok", "empty")
    with RespConn(source) as src_again, RespConn(target) as dst_again:
        if same_server(src_again, dst_again):
            report.add(SAME_STORE_CHECK, "fail", f"{target.display} is the source server itself")
        else:
            report.add(SAME_STORE_CHECK, "ok", "different servers")
    report.add("estimate", "ok", f"about {max(1, round(report.estimated_seconds))} s for {keys} keys")
    return report
