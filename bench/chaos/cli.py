"""Chaos test of PostgreSQL change capture: random writers, a follower killed at random, the fence, an exact compare.

The command line of ``bench/capture_chaos.py`` (whose docstring says what a seed does), and the
``--adapter`` child of :mod:`bench.chaos.ferry_driver`. Exit 0 only when every seed ended identical.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import psycopg

from bench.chaos.attacks import run_attacks
from bench.chaos.databases import clusters
from bench.chaos.ferry_driver import ROOT, Ferry, adapter_main
from bench.chaos.outcome import Options, Outcome
from bench.chaos.report import report, summary
from bench.chaos.schema import FEATURES
from bench.chaos.seed import run_seed
from bench.common import machine


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--adapter"]:
        return adapter_main(argv[1:])
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", help="comma-separated seeds, e.g. 1,2,3")
    parser.add_argument("--runs", type=int, default=3, help="seeds 1..N (when --seeds is not given)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the writers write while following")
    parser.add_argument("--kills", type=int, default=3, help="follower SIGKILLs a seed")
    parser.add_argument("--copy-kills", type=int, default=0, help="SIGKILLs of the copy itself, each resumed")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--scale", type=float, default=1.0, help="initial data size (1: about 30 000 rows)")
    parser.add_argument("--jobs", type=int, default=2, help="the copy's --jobs")
    parser.add_argument(
        "--target-role",
        choices=["superuser", "owner"],
        default="superuser",
        help="owner: the target role cannot set session_replication_role (foreign keys come off)",
    )
    parser.add_argument(
        "--without", default="", help=f"leave schema features out, comma-separated: {', '.join(FEATURES)}"
    )
    parser.add_argument("--bindir", type=Path, help="PostgreSQL server programs (default: the newest installed)")
    parser.add_argument("--ferry-root", type=Path, default=ROOT, help="the ferry checkout to run (default: this one)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ferry-capture-chaos")
    parser.add_argument("--attacks", action="store_true", help="run the capture-bypass scenarios instead")
    parser.add_argument("--json", type=Path, help="write the outcomes as JSON here")
    args = parser.parse_args(argv)
    if args.attacks:
        return run_attacks(Ferry(args.ferry_root.resolve()), args.bindir, args.work)
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else list(range(1, args.runs + 1))
    opts = Options(seconds=args.seconds, kills=args.kills, writers=args.writers, scale=args.scale, jobs=args.jobs,
                   target_role=args.target_role, work=args.work, ferry_root=args.ferry_root.resolve(),
                   without=tuple(f for f in args.without.split(",") if f), copy_kills=args.copy_kills)  # fmt: skip
    unknown = set(opts.without) - set(FEATURES)
    if unknown:
        parser.error(f"--without: unknown {sorted(unknown)}; known: {', '.join(FEATURES)}")
    opts.work.mkdir(parents=True, exist_ok=True)
    os.chmod(opts.work, 0o777)
    print(f"machine: {machine()}; ferry from {opts.ferry_root}", flush=True)
    outcomes: list[Outcome] = []
    with clusters(args.bindir) as (source_admin, target_admin):
        with psycopg.connect(source_admin) as conn:
            print(f"PostgreSQL {conn.info.parameter_status('server_version')}", flush=True)
        for seed in seeds:
            outcome = run_seed(seed, opts, source_admin, target_admin)
            outcomes.append(outcome)
            print(report(outcome), flush=True)
    print()
    print(summary(outcomes, opts, machine()))
    if args.json:
        args.json.write_text(json.dumps([{**o.__dict__, "ops": dict(o.ops), "ok": o.ok} for o in outcomes], indent=1,
                                        default=str))  # fmt: skip
    return 0 if all(o.ok for o in outcomes) else 1
