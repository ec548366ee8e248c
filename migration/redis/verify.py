"""``ferry redis verify``: same keys, types, TTLs (within a tolerance) and values on both sides.

Keys that expire while the check runs are not differences. Each side's ``TYPE``, ``PTTL`` and
``DUMP`` of a key are three commands, and the key may expire between any two of them (``PTTL``
then says -2, ``DUMP`` nil): such a key is gone from that side, not a key without a TTL. A key
gone from one side only counts when the other side's copy, asked again with one ``PTTL`` (never
``EXISTS`` then ``PTTL``: it may expire between the two), still lives and has no TTL or one past
the tolerance. The same holds for values read after the probe.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import hiredis

from migration.redis.connection import RespConn, encode, translate
from migration.redis.info import keyspace, reply_map, stream_full
from migration.redis.url import parse_redis_pair
from migration.verify import Difference, VerifyReport

__all__ = ["TTL_TOLERANCE_MS", "RedisVerifyReport", "compare_batch", "extras_among", "scan_batches", "verify_redis"]

#: TTLs may differ by this much (time passes between the reads); a key closer to its end is going anyway.
TTL_TOLERANCE_MS = 5000


@dataclass
class RedisVerifyReport(VerifyReport):
    """A Redis verification: every key (or a sample per database), type, TTL and value."""

    store: str = "redis"
    sample: int | None = None
    keys_checked: int = 0
    databases: dict[int, tuple[int, int]] = field(default_factory=dict)
    types: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: Keys missing on the target, all of them (the listed differences stop at a cap).
    missing: int = 0
    #: Keys missing on the target and about to expire on the source (no difference, but not on the target).
    expiring: int = 0

    def add(self, difference: Difference) -> None:
        super().add(difference)
        self.missing += difference.kind == "missing on target"

    def checked(self) -> dict[str, int]:
        return {"keys": self.keys_checked}

    def details(self) -> dict[str, Any]:
        return {
            "sample": self.sample,
            "databases": {str(db): {"source": s, "target": t} for db, (s, t) in sorted(self.databases.items())},
            "types": {k: {"source": s, "target": t} for k, (s, t) in sorted(self.types.items())},
        }

    def summary(self) -> str:
        scope = f"a sample of {self.sample} keys per database" if self.sample else "every key"
        return f"{self.keys_checked} keys checked ({scope}) in {self.seconds:.1f} s"


def _difference(kind: str, db: int, key: bytes, source: str, target: str) -> Difference:
    return Difference(kind, f"db{db}:{_show(key)}", source, target)


def _show(key: bytes) -> str:
    return key.decode("utf-8", "backslashreplace")


def _value(conn: RespConn, kind: bytes, key: bytes) -> object:
    """The value in a form that compares equal whatever the server's internal encoding."""
    if kind == b"string":
        return conn.call("GET", key)
    if kind == b"hash":
        items = conn.call("HGETALL", key)
        return dict(zip(items[::2], items[1::2], strict=True))
    if kind == b"list":
        return conn.call("LRANGE", key, 0, -1)
    if kind == b"set":
        return set(conn.call("SMEMBERS", key))
    if kind == b"zset":
        items = conn.call("ZRANGE", key, 0, -1, "WITHSCORES")
        return [(m, float(s)) for m, s in zip(items[::2], items[1::2], strict=True)]
    if kind == b"stream":
        return _stream(conn, key)
    return conn.call("DUMP", key)


def _stream(conn: RespConn, key: bytes) -> object:
    """Entries, the last ID given out, and every group with its pending entries and consumers; not the
    times (a consumer's last seen, a delivery's), which a copy keeps but a read on either side moves."""
    full = stream_full(conn, key)
    groups = []
    for group in map(reply_map, full.get(b"groups") or []):
        pending = sorted((entry[0], entry[1], entry[3]) for entry in group[b"pending"])
        consumers = sorted(
            (c[b"name"], sorted((entry[0], entry[2]) for entry in c[b"pending"]))
            for c in map(reply_map, group[b"consumers"])
        )
        groups.append((group[b"name"], group[b"last-delivered-id"], pending, consumers))
    # Not Redis 7's entries-added and max-deleted-entry-id: an older server has neither.
    return (full[b"entries"], full.get(b"last-generated-id"), sorted(groups))


def _describe(kind: bytes, pttl: int) -> str:
    return f"{kind.decode()} ttl {pttl} ms" if pttl >= 0 else f"{kind.decode()} no ttl"


def _probe(conn: RespConn, keys: list[bytes]) -> list[tuple[bytes, int, bytes | None]]:
    """``(type, pttl, dump)`` for each key, in one pipeline."""
    commands = [c for k in keys for c in (encode("TYPE", k), encode("PTTL", k), encode("DUMP", k))]
    replies = conn.pipeline(commands)
    for reply in replies:
        if isinstance(reply, hiredis.ReplyError):
            raise translate(reply, conn.endpoint.side, conn.endpoint)
    return [(replies[i], int(replies[i + 1]), replies[i + 2]) for i in range(0, len(replies), 3)]


def scan_batches(conn: RespConn, sample: int | None, batch: int) -> Iterator[list[bytes]]:
    if sample is not None:
        keys = {conn.call("RANDOMKEY") for _ in range(sample)} - {None}
        yield sorted(keys)
        return
    cursor = b"0"
    while True:
        cursor, keys = conn.call("SCAN", cursor, "COUNT", batch)
        if keys:
            yield list(keys)
        if cursor == b"0":
            return


def _gone(kind: bytes, pttl: int, dump: bytes | None) -> bool:
    """The key was not there for the whole probe: missing, or expired between its commands."""
    return kind == b"none" or pttl == -2 or dump is None


def compare_batch(
    src: RespConn, dst: RespConn, db: int, keys: list[bytes], tolerance_ms: int, report: RedisVerifyReport,
    types: tuple[Counter[str], Counter[str]], differing: set[bytes], pool: ThreadPoolExecutor,
) -> None:  # fmt: skip
    """Compare *keys*; a key found to differ goes into *differing* and is reported once."""
    # SCAN may return a key twice (while the keyspace is rehashed: keys expiring by the thousand shrink
    # it): a difference is one, however many times its key was listed.
    keys = [key for key in keys if key not in differing]
    # Both sides asked at once: inside a freeze the verify's round trips are the app's wait.
    on_target = pool.submit(_probe, dst, keys)
    for key, (s_kind, s_ttl, s_dump), (d_kind, d_ttl, d_dump) in zip(
        keys, _probe(src, keys), on_target.result(), strict=True
    ):
        if _gone(s_kind, s_ttl, s_dump):
            continue  # expired or deleted since it was listed
        report.keys_checked += 1
        types[0][s_kind.decode()] += 1
        found = _key_differences(src, dst, key, (s_kind, s_ttl, s_dump), (d_kind, d_ttl, d_dump), tolerance_ms)
        if not _gone(d_kind, d_ttl, d_dump):
            types[1][d_kind.decode()] += 1
        elif not found:
            report.expiring += 1  # in the source's count, not in the target's: no sign of a key only it has
        for kind, source, target in found:
            report.add(_difference(kind, db, key, source, target))
        if found:
            differing.add(key)


def _key_differences(
    src: RespConn, dst: RespConn, key: bytes, on_source: tuple[bytes, int, bytes | None],
    on_target: tuple[bytes, int, bytes | None], tolerance_ms: int,
) -> list[tuple[str, str, str]]:  # fmt: skip
    """What differs of one key present on the source, as ``(kind, source, target)``."""
    (s_kind, s_ttl, s_dump), (d_kind, d_ttl, d_dump) = on_source, on_target
    if _gone(d_kind, d_ttl, d_dump):
        # A copy keeps the absolute expiry, so the target's may end a few milliseconds first.
        return [("missing on target", s_kind.decode(), "-")] if _lasting(src, key, tolerance_ms) else []
    if s_kind != d_kind:
        return [("type", s_kind.decode(), d_kind.decode())]
    found = []
    if (s_ttl < 0) != (d_ttl < 0) or abs(s_ttl - d_ttl) > tolerance_ms:
        found.append(("ttl", _describe(s_kind, s_ttl), _describe(d_kind, d_ttl)))
    # Values are read after the probe: a source key that expired since (or is about to, its
    # copy with it) reads nothing on one side or both, which is no difference.
    if s_dump != d_dump and _value(src, s_kind, key) != _value(dst, d_kind, key) and _lasting(src, key, tolerance_ms):
        found.append(("value", "differs", "differs"))
    return found


def _lasting(conn: RespConn, key: bytes, tolerance_ms: int) -> bool:
    """The key is there and stays past the TTL tolerance (no TTL, or a longer one).

    One ``PTTL`` answers both: -2 is a key gone (expired since it was last read), 0 up to the
    tolerance one that is about to go, whose copy on the other side may be gone already.
    """
    pttl = int(conn.call("PTTL", key))
    return pttl == -1 or pttl > tolerance_ms


def _extra_keys(
    src: RespConn, dst: RespConn, db: int, report: RedisVerifyReport, batch: int, tolerance_ms: int,
    differing: set[bytes] | None = None,
) -> None:  # fmt: skip
    """Keys only the target has (looked for only when the counts say there are some)."""
    for keys in scan_batches(dst, None, batch):
        extras_among(src, dst, db, keys, report, tolerance_ms, differing)


def extras_among(
    src: RespConn, dst: RespConn, db: int, keys: list[bytes], report: RedisVerifyReport, tolerance_ms: int,
    differing: set[bytes] | None = None,
) -> None:  # fmt: skip
    """Which of *keys* the target holds and the source does not; each goes into *differing* too."""
    exists = src.pipeline([encode("EXISTS", k) for k in keys])
    for key, present in zip(keys, exists, strict=True):
        if not present and _lasting(dst, key, tolerance_ms):
            report.add(_difference("extra on target", db, key, "-", "present"))
            if differing is not None:
                differing.add(key)


def verify_redis(
    source_url: str, target_url: str, *, sample: int | None = None, ttl_tolerance_ms: int = TTL_TOLERANCE_MS,
    tls_skip_verify: bool = False, batch: int = 500,
) -> RedisVerifyReport:  # fmt: skip
    """Compare every database of the two servers (or *sample* random keys of each).

    :param ttl_tolerance_ms: TTLs may differ by this much (time passes between the reads).
    """
    started = time.monotonic()
    source, target = parse_redis_pair(source_url, target_url, tls_skip_verify=tls_skip_verify)
    report = RedisVerifyReport(sample=sample)
    types: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
    with RespConn(source) as src, RespConn(target) as dst, ThreadPoolExecutor(1, "ferry-verify-target") as pool:
        src_dbs, dst_dbs = keyspace(src), keyspace(dst)
        for db in sorted(src_dbs.keys() | dst_dbs.keys()):
            src.select(db)
            dst.select(db)
            missing_before, expiring_before, differing = report.missing, report.expiring, set[bytes]()
            for keys in scan_batches(src, sample, batch):
                compare_batch(src, dst, db, keys, ttl_tolerance_ms, report, types, differing, pool)
            not_on_target = report.missing - missing_before + report.expiring - expiring_before
            src_count, dst_count = int(src.call("DBSIZE")), int(dst.call("DBSIZE"))
            report.databases[db] = (src_count, dst_count)
            if sample is None and dst_count + not_on_target > src_count:
                _extra_keys(src, dst, db, report, batch, ttl_tolerance_ms)
    report.types = {k: (types[0][k], types[1][k]) for k in types[0].keys() | types[1].keys()}
    report.seconds = time.monotonic() - started
    return report
