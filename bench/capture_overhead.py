"""Benchmark: what PostgreSQL change capture costs the source, measured with pgbench.

pgbench's TPC-B-like load (several clients, a fixed time) runs against a source without
capture, with capture installed (the triggers' own cost), and with ``ferry pg follow``
applying the log to a copy meanwhile (on this one machine the follower and the target
share the source's cores, as they would not in production). Rounds alternate so drift on a shared machine hits both alike. Prints
TPS and latency p50/p99 side by side, and the capture run's TPS as a share of the
baseline's (the goal is at least 0.8). After each capture round the target is verified
identical to the source (sequences aside: the fence copies those).

Then the other way, as after the switch with the follow back (``migration.reverse``): pgbench on the
target with capture installed and the follow back applying its log into the old database (fenced but
for the follower's passage), the old database verified identical after; then on the target alone.

    .venv/bin/python bench/capture_overhead.py --scale 10 --clients 4 --seconds 20 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine  # noqa: E402
from migration.postgres import (  # noqa: E402
    begin_follow_back,
    copy_keyless_tables,
    ensure_capture,
    forget_follow,
    new_salt,
    open_follow_back,
    passage_digest,
    passage_token,
    sync_sequences,
    verify_databases,
    with_passage,
)
from migration.rehearse.pgcluster import Cluster, running_cluster, server_bindir  # noqa: E402

SETTINGS = {"fsync": "on", "synchronous_commit": "on", "shared_buffers": "256MB", "max_connections": "100"}


def _ferry(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "migration", *args], capture_output=True, text=True, env=env, check=False
    )


def _pgbench(cluster: Cluster, db: str, clients: int, seconds: int, log_dir: Path) -> tuple[float, float, float]:
    """TPS and latency p50/p99 (ms) of one pgbench run, from its per-transaction log."""
    pgbench = shutil.which("pgbench") or str(server_bindir() / "pgbench")
    for old in log_dir.glob("pgbench_log*"):
        old.unlink()
    env = {**os.environ, "PGPASSWORD": cluster.password}
    out = subprocess.run(
        [pgbench, "-h", "127.0.0.1", "-p", str(cluster.port), "-U", cluster.superuser, "-c", str(clients),
         "-j", str(clients), "-T", str(seconds), "-n", "-l", "--log-prefix", str(log_dir / "pgbench_log"), db],
        capture_output=True, text=True, env=env, check=True,
    ).stdout  # fmt: skip
    tps = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latencies = sorted(
        int(line.split()[2]) / 1000.0 for path in log_dir.glob("pgbench_log*") for line in path.read_text().splitlines()
    )
    return tps, statistics.median(latencies), latencies[int(len(latencies) * 0.99)]


def _follow_back_round(
    target: Cluster,
    db: str,
    new: str,
    old: str,
    args: argparse.Namespace,
    work: Path,
    results: dict[str, list[tuple[float, float, float]]],
    round_no: int,
) -> None:
    """pgbench on the target with capture and the follow back into the old database running, then (both sides
    verified equal, capture off) on the target alone: a write to it before the follow back began would be
    in no log."""
    ensure_capture(new)
    salt = new_salt()
    token = passage_token(old, salt)
    with psycopg.connect(new, autocommit=True) as n_conn, psycopg.connect(old, autocommit=True) as o_conn:
        origin = begin_follow_back(n_conn)
        open_follow_back(o_conn, origin, passage_digest(token))
    old_pass = with_passage(old, token)
    follow_env = {**os.environ, "FERRY_SOURCE_URL": new, "FERRY_TARGET_URL": old_pass}
    follower = subprocess.Popen([sys.executable, "-m", "migration", "pg", "follow"], env=follow_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1)
    tps, p50, p99 = _pgbench(target, db, args.clients, args.seconds, work)
    results["target + follow back"].append((tps, p50, p99))
    print(f"round {round_no}: target + follow back {tps:8.1f} tps  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    follower.send_signal(signal.SIGTERM)
    follower.wait(timeout=600)
    drained = _ferry("pg", "follow", "--seconds", "0", env=follow_env)
    assert drained.returncode == 0, drained.stderr
    with psycopg.connect(new, autocommit=True) as n_conn, psycopg.connect(old_pass, autocommit=True) as o_conn:
        sync_sequences(n_conn, o_conn)
        copy_keyless_tables(n_conn, o_conn)
    report = verify_databases(new, old, mode="full")
    assert report.identical, report.differences[:3]
    for url in (old, new):
        removed = _ferry("pg", "capture", "remove", "--source", url)
        assert removed.returncode == 0, removed.stderr
    with psycopg.connect(old, autocommit=True) as o_conn:
        forget_follow(o_conn)  # what `ferry finish` does on the old database
    tps, p50, p99 = _pgbench(target, db, args.clients, args.seconds, work)
    results["target alone"].append((tps, p50, p99))
    print(f"round {round_no}: target alone      {tps:8.1f} tps  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=10)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "ferry-capture-bench"
    work.mkdir(exist_ok=True)
    os.chmod(work, 0o777)
    results: dict[str, list[tuple[float, float, float]]] = {
        "baseline": [], "capture": [], "capture + follow": [], "target alone": [], "target + follow back": [],
    }  # fmt: skip
    with running_cluster(SETTINGS) as source, running_cluster(SETTINGS) as target:
        pgbench = shutil.which("pgbench") or str(server_bindir() / "pgbench")
        with psycopg.connect(source.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        env = {**os.environ, "PGPASSWORD": source.password}
        subprocess.run([pgbench, "-h", "127.0.0.1", "-p", str(source.port), "-U", source.superuser, "-i", "-q",
                        "-s", str(args.scale), "bench"], check=True, env=env, capture_output=True)  # fmt: skip
        src = source.url("bench")
        for round_no in range(1, args.rounds + 1):
            tps, p50, p99 = _pgbench(source, "bench", args.clients, args.seconds, work)
            results["baseline"].append((tps, p50, p99))
            print(f"round {round_no}: baseline          {tps:8.1f} tps  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
            dst = target.url(f"copy{round_no}")
            with psycopg.connect(target.url(), autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE copy{round_no}")
            copied = _ferry("pg", "copy", "--source", src, "--target", dst, "--follow-seconds", "0")
            assert copied.returncode == 0, copied.stderr
            tps, p50, p99 = _pgbench(source, "bench", args.clients, args.seconds, work)
            results["capture"].append((tps, p50, p99))
            print(f"round {round_no}: capture (triggers) {tps:8.1f} tps  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
            follow_env = {**os.environ, "FERRY_SOURCE_URL": src, "FERRY_TARGET_URL": dst}
            follower = subprocess.Popen([sys.executable, "-m", "migration", "pg", "follow"], env=follow_env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            time.sleep(1)
            tps, p50, p99 = _pgbench(source, "bench", args.clients, args.seconds, work)
            results["capture + follow"].append((tps, p50, p99))
            print(f"round {round_no}: capture + follow  {tps:8.1f} tps  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
            follower.send_signal(signal.SIGTERM)
            follower.wait(timeout=600)
            drained = _ferry("pg", "follow", "--source", src, "--target", dst, "--seconds", "0")
            assert drained.returncode == 0, drained.stderr
            # What the freeze does last: sequences and the tables without a key (pgbench_history).
            with psycopg.connect(src, autocommit=True) as s_conn, psycopg.connect(dst, autocommit=True) as d_conn:
                sync_sequences(s_conn, d_conn)
                copy_keyless_tables(s_conn, d_conn)
            report = verify_databases(src, dst, mode="full")
            assert report.identical, report.differences[:3]
            _follow_back_round(target, f"copy{round_no}", dst, src, args, work, results, round_no)
    base = statistics.median(r[0] for r in results["baseline"])
    base_target = statistics.median(r[0] for r in results["target alone"])
    print()
    print(f"{'under pgbench':<20} {'median tps':>11} {'p50 ms':>8} {'p99 ms':>8} {'runs (tps)':>28} {'share':>7}")
    for name, runs in results.items():
        tps = statistics.median(r[0] for r in runs)
        print(f"{name:<20} {tps:11.1f} {statistics.median(r[1] for r in runs):8.2f} "
              f"{statistics.median(r[2] for r in runs):8.2f} {', '.join(f'{r[0]:.0f}' for r in runs):>28} "
              f"{tps / (base_target if name.startswith('target') else base):7.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
