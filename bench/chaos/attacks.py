"""Write paths that slip past trigger-based capture while ``ferry pg follow`` runs, one scenario each.

Running the scenarios of :mod:`bench.chaos.attack_cases` (the command line of
``bench/capture_attacks.py``, whose docstring says what a scenario does, and of
``bench/capture_chaos.py --attacks``). ``MISSED`` is a difference nobody reported.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.chaos.attack_cases import ATTACKS, BASE, Attack
from bench.chaos.attack_hooks import Ctx, close_kept
from bench.chaos.comparator import compare
from bench.chaos.databases import clusters, seed_databases
from bench.chaos.ferry_driver import ROOT, Ferry
from bench.chaos.follower import Follower


@dataclass
class AttackResult:
    attack: Attack
    verdict: str = ""
    noticed: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_attack(attack: Attack, ferry: Ferry, source_admin: str, target_admin: str, work: Path) -> AttackResult:
    started = time.monotonic()
    result = AttackResult(attack)
    with seed_databases(source_admin, target_admin, abs(hash(attack.name)) % 10000, "superuser") as (
        src, dst, src_su, dst_su,
    ):  # fmt: skip
        ctx = Ctx(src, src_su, ferry, dst, work)
        try:
            ctx.run(src, BASE)
            if ferry.run("pg", "capture", "install", "--source", src).returncode != 0:
                result.verdict = "setup failed: capture install"
                return result
            folder = work / f"attack-{attack.name}"
            folder.mkdir(parents=True, exist_ok=True)
            follower = Follower(ferry, src, dst, folder, random.Random(1), [5000], leave_paused=False)
            follower.start_copy(2)
            if follower.wait(lambda s: s.get("phase") == "live", 300) != "ok":
                result.verdict = f"setup failed: copy --follow ({follower.current.error if follower.current else ''})"
                return result
            if attack.during:
                try:
                    attack.during(ctx)
                except psycopg.Error as exc:
                    ctx.said.append(f"the attack was refused: {type(exc).__name__}: {exc}")
            at = time.time()
            follower.wait(lambda s: float(s["at"]) > at + 0.3 and s.get("queued") == 0, 60)
            freeze = ferry.freeze(src, dst)
            stage = freeze.next()
            if stage["stage"] == "fenced" and attack.fenced:
                attack.fenced(ctx)
            follower.stop()
            if stage["stage"] == "fenced":
                freeze.go()
                stage = freeze.next()
            if stage["stage"] == "drained":
                if stage.get("proof") not in (None, "identical"):
                    result.noticed.append(f"ferry's freeze proof: {stage['proof']}")
                if attack.after_drain:
                    attack.after_drain(ctx)
                freeze.go()
                stage = freeze.next()
                if stage["stage"] == "proved" and stage.get("proof") not in (None, "identical"):
                    result.noticed.append(f"ferry's freeze proof, again before the switch: {stage['proof']}")
            elif attack.after_drain:
                attack.after_drain(ctx)
            if stage["stage"] == "error":
                result.noticed.append(f"freeze: {stage['error']}")
            result.noticed += [e for e in follower.errors()]
            diffs, _, notes = compare(src_su, dst_su)
            result.differences = diffs + ([n for n in notes if "materialized view" in n] if attack.matview else [])
            if freeze.proc.poll() is None:
                freeze.lower()
            else:
                freeze.finish()
                lowered = ferry.freeze(src, dst, only_lower=True)
                lowered.next(120)
                lowered.finish()
        except Exception as exc:
            result.verdict = f"harness: {type(exc).__name__}: {exc}"
        finally:
            if attack.cleanup:
                attack.cleanup(ctx)
            close_kept(ctx)
            ferry.run("pg", "capture", "remove", "--source", src)
            result.said = ctx.said
            result.seconds = time.monotonic() - started
    if not result.verdict:
        if result.differences and not result.noticed:
            result.verdict = "MISSED: the target differs and nothing said so"
        elif result.differences:
            result.verdict = "noticed (the target differs, and ferry said so)"
        elif result.noticed:
            result.verdict = "noticed (no difference)"
        else:
            result.verdict = "no divergence"
    return result


def run_attacks(ferry: Ferry, bindir: Path | None, work: Path, only: set[str] | None = None) -> int:
    work.mkdir(parents=True, exist_ok=True)
    results: list[AttackResult] = []
    with clusters(bindir) as (source_admin, target_admin):
        with psycopg.connect(source_admin) as conn:
            version = conn.info.server_version
            print(f"PostgreSQL {conn.info.parameter_status('server_version')}; ferry from {ferry.root}", flush=True)
        for attack in ATTACKS:
            if (only and attack.name not in only) or version < attack.min_version:
                continue
            result = run_attack(attack, ferry, source_admin, target_admin, work)
            results.append(result)
            print(f"{attack.name} ({attack.who}): {result.verdict} [{result.seconds:.0f} s]", flush=True)
            for line in result.noticed:
                print(f"  ferry: {line}")
            for line in result.differences:
                print(f"  differs: {line[:300]}")
            for line in result.said:
                print(f"  attack: {line[:300]}")
    print()
    print("| attack | who | what | verdict |")
    print("|---|---|---|---|")
    for r in results:
        print(f"| {r.attack.name} | {r.attack.who} | {r.attack.what} | {r.verdict} |")
    return 1 if any(r.verdict.startswith(("MISSED", "harness", "setup")) for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", help="comma-separated attack names")
    parser.add_argument("--ferry-root", type=Path, default=ROOT)
    parser.add_argument("--bindir", type=Path)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "ferry-capture-chaos")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    return run_attacks(Ferry(args.ferry_root.resolve()), args.bindir, args.work, only)
