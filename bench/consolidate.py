"""Consolidation: N databases of two apps into one instance, ferry's moves against the runbooks' way.

ferry: ``ferry rehearse --databases N`` (``migration.rehearse.consolidate``): the apps keep writing; each
move copies and follows while live, so its app's writes stop only for its freeze. The runbooks' way (the
peer): each database in turn inside a maintenance window, ``pg_dump | psql`` into the target's database
(the window lasts the whole copy). Both on the same data (the rehearsal's shop, ``--customers`` per
database), every result checked: ferry's by its verify and the app's acknowledged writes found on the target
(0 lost), the peer's by ``ferry pg verify --mode full``. Prints, per database, the write-freeze medians and
ferry's ratio to the peer's.

    .venv/bin/python bench/consolidate.py --databases 3 --customers 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine
from migration.rehearse.consolidate import MOVES, rehearse_moves
from migration.rehearse.dataset import fill_postgres
from migration.rehearse.pgcluster import running_cluster, server_bindir


def _peer_round(count: int, customers: int) -> list[float]:
    """``pg_dump | psql`` of each database inside its window: seconds per database, each result verified."""
    bindir = server_bindir()  # the servers' own pg_dump and psql, as a runbook has them (a newer pg_dump's SQL
    # sets parameters an older server does not know)
    windows = []
    with running_cluster() as source, running_cluster() as target:
        for i, (name, _app, _var) in enumerate(MOVES[:count]):
            with (
                psycopg.connect(source.url(), autocommit=True) as src,
                psycopg.connect(target.url(), autocommit=True) as dst,
            ):
                src.execute(f"CREATE DATABASE heroku_d{i + 1}")
                dst.execute(f"CREATE DATABASE {name}")
            fill_postgres(source.url(f"heroku_d{i + 1}"), max(100, customers // count))
            started = time.perf_counter()
            dump = subprocess.Popen([str(bindir / "pg_dump"), "--no-owner", "-d", source.url(f"heroku_d{i + 1}")],
                                    stdout=subprocess.PIPE)  # fmt: skip
            load = subprocess.Popen([str(bindir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-d", target.url(name)],
                                    stdin=dump.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
            assert dump.stdout is not None
            dump.stdout.close()  # psql's alone: pg_dump gets SIGPIPE if psql stops
            _, errors = load.communicate()
            if dump.wait() != 0 or load.returncode != 0:
                raise RuntimeError(f"pg_dump | psql of {name} failed: {errors[-500:]}")
            windows.append(time.perf_counter() - started)
            verify = subprocess.run(
                [sys.executable, "-m", "migration", "pg", "verify", "--mode", "full", "--source",
                 source.url(f"heroku_d{i + 1}"), "--target", target.url(name)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if verify.returncode != 0:
                raise RuntimeError(f"the peer's copy of {name} differs: {verify.stdout[-500:]}{verify.stderr[-500:]}")
    return windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=int, default=3)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    names = [name for name, _, _ in MOVES[: args.databases]]
    ferry: dict[str, list[float]] = {name: [] for name in names}
    peer: dict[str, list[float]] = {name: [] for name in names}
    totals: list[float] = []
    for round_ in range(args.rounds):
        with tempfile.TemporaryDirectory() as report:
            result = rehearse_moves(Path(report), args.databases, customers=args.customers, jobs=2, boot_seconds=0.0,
                                    fail_move=None, keep=False, say=lambda _line: None)  # fmt: skip
        if not result.verified or result.lost_writes:
            raise RuntimeError(f"round {round_ + 1}: not verified or writes lost: {result.to_json()}")
        for move in result.moves:
            ferry[move["name"]].append(float(move["write_freeze_seconds"]))
        totals.append(result.seconds)
        for name, seconds in zip(names, _peer_round(args.databases, args.customers), strict=True):
            peer[name].append(seconds)
    print(f"machine: {machine()}")
    print(f"{args.databases} databases, {args.customers} customers in all, {args.rounds} rounds; "
          f"ferry's whole rehearsal {statistics.median(totals):.1f} s (median)")  # fmt: skip
    print(f"{'database':<12} {'ferry freeze s':>16} {'pg_dump|psql window s':>24} {'ferry / peer':>13}")
    for name in names:
        mine, theirs = statistics.median(ferry[name]), statistics.median(peer[name])
        print(
            f"{name:<12} {mine:>16.2f} {theirs:>24.2f} {mine / theirs:>13.2f}   "
            f"(ferry {', '.join(f'{s:.2f}' for s in ferry[name])}; peer {', '.join(f'{s:.2f}' for s in peer[name])})"
        )


if __name__ == "__main__":
    main()
