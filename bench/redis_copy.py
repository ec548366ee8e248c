"""Benchmark: ferry redis copy against a per-key copier and REPLICAOF full sync, on the same data.

Generates mixed keys on a source redis-server (strings, hashes, lists, sets, sorted sets,
streams; a third with TTLs), then copies them into an empty target three ways:

- ``ferry redis copy`` (pipelined DUMP/PTTL and RESTORE … ABSTTL over several connections),
- a per-key SCAN, DUMP, PTTL, RESTORE copier without pipelining (the seeds' method, with
  TTLs kept so the result can be verified),
- ``REPLICAOF`` full sync on the target (time to ``master_link_status:up`` and sync done).

Every result is checked with ``ferry redis verify``. Prints times and ratios.

    .venv/bin/python bench/redis_copy.py --keys 1000000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Timings, machine  # noqa: E402
from migration.rehearse.redisserver import RedisServer, running_redis  # noqa: E402


def _cmd(*args: bytes | str | int) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def generate(server: RedisServer, keys: int, seed: int = 7) -> None:
    """*keys* mixed keys through ``redis-cli --pipe``; a third expire in 1-3 hours."""
    rng = random.Random(seed)
    chunks: list[bytes] = [_cmd("AUTH", server.password)]
    for i in range(keys):
        kind = i % 20
        key = f"k:{i}"
        if kind < 8:
            chunks.append(_cmd("SET", key, f"value-{i}-" + "x" * rng.randint(10, 200)))
        elif kind < 11:
            fields = [x for f in range(rng.randint(3, 15)) for x in (f"f{f}", f"v{i}.{f}")]
            chunks.append(_cmd("HSET", key, *fields))
        elif kind < 14:
            chunks.append(_cmd("RPUSH", key, *[f"item{i}.{n}" for n in range(rng.randint(3, 15))]))
        elif kind < 16:
            chunks.append(_cmd("SADD", key, *[f"m{n}" for n in range(rng.randint(3, 15))]))
        elif kind < 18:
            chunks.append(_cmd("ZADD", key, *[x for n in range(rng.randint(3, 15)) for x in (n * 1.5, f"z{n}")]))
        else:
            for n in range(rng.randint(1, 5)):
                chunks.append(_cmd("XADD", key, "*", "event", f"e{n}", "user", str(i)))
            if kind == 19:
                chunks.append(_cmd("XGROUP", "CREATE", key, "workers", "0"))
        if i % 3 == 0:
            chunks.append(_cmd("EXPIRE", key, 3600 + rng.randint(0, 7200)))
        if len(chunks) >= 50_000:
            _pipe(server, b"".join(chunks))
            chunks = [_cmd("AUTH", server.password)]
    _pipe(server, b"".join(chunks))


def _pipe(server: RedisServer, data: bytes) -> None:
    subprocess.run(["redis-cli", "-p", str(server.port), "--pipe"], input=data, check=True, capture_output=True)


def flush(server: RedisServer) -> None:
    import redis

    redis.Redis(port=server.port, password=server.password).flushall()


def run_ferry(source: RedisServer, target: RedisServer, jobs: int) -> float:
    started = time.perf_counter()
    subprocess.run(
        [str(ROOT / ".venv/bin/ferry"), "redis", "copy", "--source", source.url(), "--target", target.url(),
         "--jobs", str(jobs)],
        check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - started


def run_per_key(source: RedisServer, target: RedisServer) -> float:
    """The seeds' copier: one key at a time, one round trip per command."""
    import redis

    src = redis.Redis(port=source.port, password=source.password)
    dst = redis.Redis(port=target.port, password=target.password)
    started = time.perf_counter()
    for db in src.info("keyspace"):
        number = int(str(db)[2:])
        src.execute_command("SELECT", number)
        dst.execute_command("SELECT", number)
        for key in src.scan_iter(count=1000):
            payload = src.dump(key)
            ttl = src.pttl(key)
            if payload is None or ttl == -2:
                continue
            dst.restore(key, max(ttl, 0), payload, replace=True)
    return time.perf_counter() - started


def run_replicaof(source: RedisServer, target: RedisServer) -> float:
    import redis

    dst = redis.Redis(port=target.port, password=target.password)
    dst.config_set("masterauth", source.password)
    started = time.perf_counter()
    dst.replicaof("127.0.0.1", source.port)
    while True:
        info = dst.info("replication")
        if info.get("master_link_status") == "up" and not info.get("master_sync_in_progress"):
            break
        time.sleep(0.01)
    seconds = time.perf_counter() - started
    dst.replicaof("NO", "ONE")
    return seconds


def verify(source: RedisServer, target: RedisServer) -> None:
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/ferry"), "redis", "verify", "--source", source.url(), "--target", target.url(),
         "--json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"verify failed: {proc.stdout[-2000:]} {proc.stderr[-1000:]}")
    report = json.loads(proc.stdout)
    assert report["identical"] and report["keys_checked"] > 0


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--per-key-rounds", type=int, default=1, help="the per-key copier is slow: rounds for it")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    timings = Timings(reference="ferry redis copy")
    with running_redis() as source, running_redis() as target:
        started = time.perf_counter()
        generate(source, args.keys)
        import redis

        dbsize = redis.Redis(port=source.port, password=source.password).dbsize()
        print(f"dataset: {dbsize} keys in {time.perf_counter() - started:.1f} s; ferry jobs {args.jobs}", flush=True)
        tools = ["ferry redis copy", "REPLICAOF full sync", "per-key copier"]
        for round_no in range(args.rounds):
            for tool in tools[round_no % 2 :] + tools[: round_no % 2]:
                if tool == "per-key copier" and round_no >= args.per_key_rounds:
                    continue
                flush(target)
                if tool == "ferry redis copy":
                    seconds = run_ferry(source, target, args.jobs)
                elif tool == "REPLICAOF full sync":
                    seconds = run_replicaof(source, target)
                else:
                    seconds = run_per_key(source, target)
                verify(source, target)
                timings.add(tool, seconds)
                print(
                    f"round {round_no + 1}: {tool:<22} {seconds:7.1f} s  ({dbsize / seconds:,.0f} keys/s, verified)",
                    flush=True,
                )
    print()
    print(timings.table())
    ferry = timings.median("ferry redis copy")
    print(
        f"\nferry / REPLICAOF: {ferry / timings.median('REPLICAOF full sync'):.2f}   "
        f"per-key / ferry: {timings.median('per-key copier') / ferry:.0f}x"
    )


if __name__ == "__main__":
    main()
