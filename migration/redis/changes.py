"""Verification in proportion to the changes: every key while the app writes, inside the freeze only the
keys written since.

:func:`verify_live` starts a :class:`~migration.redis.witness.ChangeWitness` on each side, then compares
every key as ``ferry redis verify`` does, and looks for keys only the target has; a key that differs
(in flux: written since the live copy last read it) is kept to be compared again. :func:`verify_changed`,
once the source's writes stopped and the live copy drained, seals both witnesses and compares the keys
they name and the kept ones, in every database either side has, then the key counts. A key compared
equal while live and written on neither side since is still equal; the witnesses do not trust the
keyspace notifications the live copy follows. Where a witness cannot say, every key is compared.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from migration.redis.batch import CopySettings, copy_keys
from migration.redis.connection import RespConn
from migration.redis.info import keyspace, version
from migration.redis.url import parse_redis_pair
from migration.redis.verify import (
    TTL_TOLERANCE_MS,
    RedisVerifyReport,
    compare_batch,
    extras_among,
    scan_batches,
    verify_redis,
)
from migration.redis.witness import ChangeWitness, Testimony, start_witness

__all__ = ["LiveRedisVerify", "level_kept", "verify_again_live", "verify_changed", "verify_live"]

_BATCH = 500


@dataclass
class LiveRedisVerify:
    """The live pass: its witnesses (still listening), the key names to compare again, what it checked."""

    witnesses: tuple[ChangeWitness, ChangeWitness]
    kept: set[bytes] = field(default_factory=set)
    keys_checked: int = 0
    seconds: float = 0.0

    def close(self) -> None:
        for witness in self.witnesses:
            witness.close()


def verify_live(source_url: str, target_url: str, *, tls_skip_verify: bool = False) -> LiveRedisVerify | str:
    """Every key compared while the app writes, the witnesses listening from before the first one.

    :returns: the pass, or the one-line reason a side gives no witness (the freeze compares every key).
    """
    started = time.monotonic()
    source, target = parse_redis_pair(source_url, target_url, tls_skip_verify=tls_skip_verify)
    on_source = start_witness(source)
    if isinstance(on_source, str):
        return on_source
    on_target = start_witness(target)
    if isinstance(on_target, str):
        on_source.close()
        return on_target
    live = LiveRedisVerify((on_source, on_target))
    scratch = RedisVerifyReport()
    types: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
    try:
        with RespConn(source) as src, RespConn(target) as dst, ThreadPoolExecutor(1, "ferry-verify-target") as pool:
            for db in sorted(keyspace(src).keys() | keyspace(dst).keys()):
                src.select(db)
                dst.select(db)
                for keys in scan_batches(src, None, _BATCH):
                    compare_batch(src, dst, db, keys, TTL_TOLERANCE_MS, scratch, types, live.kept, pool)
                # Target-only keys are looked for always: the counts mean little while the app writes.
                for keys in scan_batches(dst, None, _BATCH):
                    extras_among(src, dst, db, keys, scratch, TTL_TOLERANCE_MS, live.kept)
    except BaseException:
        live.close()
        raise
    live.keys_checked, live.seconds = scratch.keys_checked, time.monotonic() - started
    return live


def verify_again_live(
    source_url: str, target_url: str, live: LiveRedisVerify, *, tls_skip_verify: bool = False
) -> int | None:
    """Right before the freeze: the keys written since the live pass (and those it kept) compared again while
    the app writes, so the freeze has only what is written after this to compare. Returns how many were
    compared, or ``None`` when a witness cannot say any more (the freeze then compares every key)."""
    taken = [witness.take() for witness in live.witnesses]
    if not all(t.complete for t in taken):
        return None
    source, target = parse_redis_pair(source_url, target_url, tls_skip_verify=tls_skip_verify)
    with RespConn(source) as src, RespConn(target) as dst:
        names = _names(src, dst, live.kept, taken)
        live.kept = _compare_names(src, dst, names, RedisVerifyReport())
    return len(names)


def level_kept(source_url: str, target_url: str, live: LiveRedisVerify, *, tls_skip_verify: bool = False) -> int:
    """While the app writes, the keys the live passes kept (they differ) copied again from the source, and
    deleted from the target where the source has none: on a target that is the old Redis followed back
    into, a key written there since the switch by a client still on its URL is one the app no longer reads.
    Then compared again (what still differs stays kept). Returns how many were copied again."""
    if not live.kept:
        return 0
    names = sorted(live.kept)
    source, target = parse_redis_pair(source_url, target_url, tls_skip_verify=tls_skip_verify)
    with RespConn(source) as src, RespConn(target) as dst:
        settings = CopySettings(restore_compatible=version(src)[:2] <= version(dst)[:2])
        for db in sorted(keyspace(src).keys() | keyspace(dst).keys()):
            src.select(db)
            dst.select(db)
            for start in range(0, len(names), _BATCH):
                copy_keys(src, dst, names[start : start + _BATCH], settings, delete_missing=True)
        live.kept = _compare_names(src, dst, names, RedisVerifyReport())
    return len(names)


def verify_changed(
    source_url: str, target_url: str, live: LiveRedisVerify, *, tls_skip_verify: bool = False
) -> RedisVerifyReport:
    """Inside the freeze: the keys written on either side since the live pass, and those it kept, compared
    in every database; every key when a witness cannot say (the report's notes say why)."""
    started = time.monotonic()
    with ThreadPoolExecutor(len(live.witnesses), "ferry-witness") as pool:
        testimonies = list(pool.map(ChangeWitness.seal, live.witnesses))
    silent = [
        f"{w.endpoint.side}: {t.reason}" for w, t in zip(live.witnesses, testimonies, strict=True) if not t.complete
    ]
    if silent:
        report = verify_redis(source_url, target_url, tls_skip_verify=tls_skip_verify)
        report.notes.append(f"every key compared: the witness cannot say what changed ({'; '.join(silent)})")
        return report
    source, target = parse_redis_pair(source_url, target_url, tls_skip_verify=tls_skip_verify)
    report = RedisVerifyReport()
    with RespConn(source) as src, RespConn(target) as dst:
        names = _names(src, dst, live.kept, testimonies)
        _compare_names(src, dst, names, report)
        # The keys compared agree and the counts do not (an expiry between the two, or a key no witness
        # named): every key is compared.
        uneven = [db for db, (mine, theirs) in report.databases.items() if mine != theirs]
    if uneven and report.identical:
        whole = verify_redis(source_url, target_url, tls_skip_verify=tls_skip_verify)
        whole.notes.append(f"every key compared: the key counts of db {', '.join(map(str, uneven))} disagreed")
        return whole
    report.notes.append(
        f"{len(names)} keys written since the live pass compared in each database (key tracking on both sides "
        f"named them); the other keys compared equal while live ({live.keys_checked} keys)"
    )
    report.seconds = time.monotonic() - started
    return report


def _names(src: RespConn, dst: RespConn, kept: set[bytes], testimonies: list[Testimony]) -> list[bytes]:
    """What to compare: the names kept and those the witnesses named, and every stream when a consumer-group
    command ran (no tracking names what those change)."""
    names = kept.union(*(t.keys or () for t in testimonies))
    if any(t.streams for t in testimonies):
        for conn in (src, dst):
            for db in keyspace(conn):
                conn.select(db)
                cursor = b"0"
                while True:
                    cursor, found = conn.call("SCAN", cursor, "COUNT", 1000, "TYPE", "stream")
                    names.update(found)
                    if cursor == b"0":
                        break
    return sorted(names)


def _compare_names(src: RespConn, dst: RespConn, names: list[bytes], report: RedisVerifyReport) -> set[bytes]:
    """*names* compared in every database either side holds, then each database's key count (in *report*);
    returns the names that differ."""
    differing: set[bytes] = set()
    types: tuple[Counter[str], Counter[str]] = (Counter(), Counter())
    with ThreadPoolExecutor(1, "ferry-verify-target") as pool:
        for db in sorted(keyspace(src).keys() | keyspace(dst).keys()):
            src.select(db)
            dst.select(db)
            in_db: set[bytes] = set()
            for start in range(0, len(names), _BATCH):
                batch = names[start : start + _BATCH]
                compare_batch(src, dst, db, batch, TTL_TOLERANCE_MS, report, types, in_db, pool)
                extras_among(src, dst, db, [k for k in batch if k not in in_db], report, TTL_TOLERANCE_MS, in_db)
            differing |= in_db
            report.databases[db] = (int(src.call("DBSIZE")), int(dst.call("DBSIZE")))
    report.types = {k: (types[0][k], types[1][k]) for k in types[0].keys() | types[1].keys()}
    return differing
