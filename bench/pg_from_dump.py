"""Benchmark: restoring one ``pg_dump -Fc`` archive (what Heroku PG Backups gives) three ways.

Generates the dataset of ``bench/pg_copy.py`` (pgbench tables plus a JSONB event table with B-tree
and GIN indexes) on a source cluster, dumps it once with the server's own ``pg_dump -Fc`` (as PG
Backups does), then per round restores that archive into a fresh target database with each tool:

- ``ferry pg copy --from-dump ARCHIVE --jobs N --index-jobs N``
- ``pg_restore -j N -d TARGET ARCHIVE``
- ``pg_restore -f - ARCHIVE | psql`` (one stream)

Every result is checked with ``ferry pg verify --from-dump`` (the archive's objects and each table's
rows counted from the archive) before its time counts. Prints medians and ratios (ferry's median
divided by the tool's: below 1.0 means ferry is faster).

    .venv/bin/python bench/pg_from_dump.py --size-gb 0.5 --jobs 2 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import Timings, machine, timed  # noqa: E402
from bench.pg_copy import SERVER_SETTINGS, fresh_target, generate, plain_url  # noqa: E402
from migration.rehearse.pgcluster import Cluster, running_cluster, server_bindir  # noqa: E402

FERRY = "ferry pg copy --from-dump"


def dump(source: Cluster, archive: Path) -> None:
    """The archive, by the server's own pg_dump (its format every pg_restore here reads)."""
    env = {**os.environ, "PGPASSWORD": source.password}
    timed([str(server_bindir() / "pg_dump"), "-Fc", "-f", str(archive), "-d", plain_url(source, "bench")], env=env)


def run_tool(tool: str, target: Cluster, archive: Path, jobs: int) -> float:
    bindir = server_bindir()
    env = {**os.environ, "PGPASSWORD": target.password}
    dst = plain_url(target, "copy")
    if tool == FERRY:
        ferry = [str(ROOT / ".venv/bin/ferry"), "pg", "copy", "--from-dump", str(archive), "--target", dst]
        return timed([*ferry, "--jobs", str(jobs), "--index-jobs", str(jobs)], env=env)
    if tool == f"pg_restore -j{jobs}":
        return timed([str(bindir / "pg_restore"), "-j", str(jobs), "--no-owner", "-d", dst, str(archive)], env=env)
    if tool == "pg_restore | psql":
        return timed(
            f"{bindir}/pg_restore --no-owner -f - '{archive}' | {bindir}/psql -X -q -v ON_ERROR_STOP=1 -d '{dst}' "
            ">/dev/null",
            env=env,
            shell=True,
        )
    raise ValueError(tool)


def verify(target: Cluster, archive: Path, jobs: int) -> int:
    """``ferry pg verify --from-dump``: identical, or the benchmark stops. Returns the rows checked."""
    env = {**os.environ, "PGPASSWORD": target.password}
    proc = subprocess.run(
        [str(ROOT / ".venv/bin/ferry"), "pg", "verify", "--from-dump", str(archive), "--target",
         plain_url(target, "copy"), "--jobs", str(jobs), "--json"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"verify failed ({proc.returncode}): {proc.stdout[-3000:]} {proc.stderr[-1000:]}")
    report = json.loads(proc.stdout)
    assert report["identical"] and report["checked"]["rows"] > 0, report
    return int(report["checked"]["rows"])


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=0.5, help="approximate source database size")
    parser.add_argument("--jobs", type=int, default=2, help="job count given to every tool")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tools", default="all", help="comma-separated subset of the tool names")
    args = parser.parse_args()

    jobs = args.jobs
    tools = [FERRY, f"pg_restore -j{jobs}", "pg_restore | psql"]
    if args.tools != "all":
        tools = [t for t in tools if any(t.startswith(x.strip()) for x in args.tools.split(","))]
    print(f"machine: {machine()}", flush=True)
    timings = Timings(reference=FERRY)
    with (
        running_cluster(SERVER_SETTINGS) as source,
        running_cluster(SERVER_SETTINGS) as target,
        tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp,
    ):
        dataset = generate(source, args.size_gb)
        archive = Path(tmp) / "bench.dump"
        dump(source, archive)
        print(f"dataset: {dataset}; archive {archive.stat().st_size / 1e6:.0f} MB; jobs {jobs}; rounds {args.rounds}",
              flush=True)  # fmt: skip
        for round_no in range(args.rounds):
            order = tools[round_no % len(tools) :] + tools[: round_no % len(tools)]
            for tool in order:
                fresh_target(target)
                seconds = run_tool(tool, target, archive, jobs)
                rows = verify(target, archive, jobs)
                timings.add(tool, seconds)
                print(f"round {round_no + 1}: {tool:<28} {seconds:7.1f} s  (verified: {rows} rows)", flush=True)
    print()
    print(timings.table())
    fastest_peer = min((t for t in timings.runs if t != FERRY), key=timings.median, default=None)
    if fastest_peer:
        ratio = timings.median(FERRY) / timings.median(fastest_peer)
        print(f"\nferry / fastest peer ({fastest_peer}): {ratio:.2f}")


if __name__ == "__main__":
    main()
