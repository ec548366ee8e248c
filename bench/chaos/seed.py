"""One seed, start to end: schema, writers, capture install, copy --follow, the follower killed at
random and started again, catch-up, a straggler across the fence, the freeze, the compare, the
fence lowered and capture removed."""

from __future__ import annotations

import os
import random
import threading
import time
import traceback
from typing import Any

import psycopg

from bench.chaos.catalog import catalog, leftovers
from bench.chaos.comparator import compare
from bench.chaos.databases import seed_databases
from bench.chaos.ferry_driver import Ferry, Freeze, error_line
from bench.chaos.follower import Follower
from bench.chaos.outcome import Options, Outcome
from bench.chaos.schema import create_schema
from bench.chaos.writers import Writer, ledger_missing


def _say(opts: Options, seed: int, text: str) -> None:
    if opts.verbose:
        print(f"[seed {seed} {time.strftime('%H:%M:%S')}] {text}", flush=True)


def run_seed(seed: int, opts: Options, source_admin: str, target_admin: str) -> Outcome:
    """One seed, start to end; never raises for what ferry did (it is in the outcome)."""
    started = time.monotonic()
    out = Outcome(seed)
    rng = random.Random(seed)
    ferry = Ferry(opts.ferry_root)
    work = opts.work / f"seed-{seed}-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o777)
    with seed_databases(source_admin, target_admin, seed, opts.target_role) as (src, dst, src_su, dst_su):
        with psycopg.connect(src, autocommit=True) as conn:
            create_schema(conn, random.Random(f"{seed}-schema"), opts.scale, opts.without)
            version = conn.info.server_version
        before = catalog(src_su)
        stop = threading.Event()
        writers = [Writer(i, src, seed, stop, version) for i in range(opts.writers)]
        follower = Follower(ferry, src, dst, work, rng, list(opts.batches), leave_paused=opts.target_role == "owner")
        straggler: psycopg.Connection[Any] | None = None
        freeze: Freeze | None = None
        try:
            for w in writers:
                w.start()
            # Installed while the app writes (its lock care is part of the test).
            for attempt in range(3):
                installed = ferry.run("pg", "capture", "install", "--source", src)
                if installed.returncode == 0:
                    break
                out.notes.append(
                    f"capture install try {attempt + 1}: {error_line(installed.stderr) or installed.stderr[-200:]}"
                )
            else:
                out.errors.append(out.notes[-1])
                return out
            _say(opts, seed, "capture installed; copying with --follow")
            follower.start_copy(opts.jobs)
            for _ in range(opts.copy_kills):  # killed while it copies, then `ferry pg copy --resume --follow`
                if follower.wait(lambda s: True, timeout=rng.uniform(0.3, 3.0)) != "timeout":
                    break  # it is following already (or ended): too late to kill it copying
                follower.kill()
                _say(opts, seed, "copy killed while copying; resuming")
                follower.start_copy(opts.jobs, resume=True)
            state = follower.wait(lambda s: s.get("phase") == "live", timeout=900)
            run = follower.current
            if state == "timeout" or (state == "exited" and run is not None and "--resume" in (run.error or "")):
                out.errors.append(f"copy --follow never went live ({state}): {run.error if run else ''}")
                return out
            # exited: the copy is done but its follow failed at once; the chaos loop starts `ferry pg follow`
            _say(opts, seed, f"following; writers and kills for {opts.seconds:.0f} s")
            _chaos(opts, seed, rng, follower, out)
            stop.set()
            for w in writers:
                w.join(60)
            # Writes are over: the follower must catch up by itself (the runbook's catch-up); one that
            # fails is started again, three times at most (not when it stalled already).
            stopped_at = time.time()
            stalled = any(p.startswith("the follow stalled") for p in out.problems)
            for _ in range(0 if stalled else 4):
                state = follower.wait(lambda s: float(s["at"]) > stopped_at + 0.5 and s.get("queued") == 0,
                                      timeout=opts.catch_up_seconds)  # fmt: skip
                if state != "exited":
                    break
                _say(
                    opts,
                    seed,
                    f"follower ended by itself while catching up: {follower.current.error if follower.current else ''}",
                )
                out.restarts_after_error += 1
                follower.start_follow()
            if not stalled and state != "ok":
                run = follower.current
                if run is not None and run.error:  # it failed: a stall
                    out.problems.append(f"the follow did not catch up after the writes stopped ({run.error})")
                else:  # merely slow: the drain inside the freeze does the rest
                    out.notes.append(
                        f"the follow had not caught up {opts.catch_up_seconds:.0f} s after the writes stopped"
                    )
            # A transaction open across the fence: its write must land nowhere.
            straggler = psycopg.connect(src)
            straggler.execute("UPDATE counters SET value = -424242 WHERE name = (SELECT min(name) FROM counters)")
            _say(opts, seed, "raising the fence")
            freeze = ferry.freeze(src, dst, pause_fks=opts.target_role == "owner")
            stage = freeze.next()
            if stage["stage"] == "fenced":
                follower.stop()  # its last batch, then it ends (the runbook's final sync does the same)
                freeze.go()
                stage = freeze.next()
                if stage["stage"] == "drained":
                    out.drained = int(stage["applied"])
                    if "proof" in stage:
                        out.notes.append(f"ferry's own proof: {stage['proof']}")
                    freeze.go()
                    stage = freeze.next()
            else:
                follower.stop()
            if stage["stage"] == "error":
                out.errors.append(f"freeze: {stage['error']}")
            try:
                straggler.commit()
                out.straggler = "COMMITTED after the fence"
                out.problems.append("a transaction open across the fence committed")
            except psycopg.Error as exc:
                out.straggler = f"ended ({type(exc).__name__})"
            _say(opts, seed, "comparing")
            out.differences, out.samples, notes = compare(src_su, dst_su)
            out.notes += notes
            out.identical = not out.differences
            out.missing_acked = ledger_missing(dst_su, [w.stats for w in writers])
        except Exception as exc:  # the harness itself
            out.problems.append(f"harness: {type(exc).__name__}: {exc}")
            traceback.print_exc()
        finally:
            stop.set()
            for w in writers:
                w.join(60)
            if follower.alive():
                follower.kill()
            if straggler is not None:
                straggler.close()
            if freeze is not None and freeze.proc.poll() is None:
                if (last := freeze.lower())["stage"] == "error":  # compared: the fence comes down
                    out.errors.append(f"lower_fence: {last['error']}")
            else:  # never raised, or its process died: make sure no fence stays up
                lowered = ferry.freeze(src, dst, only_lower=True)
                if (last := lowered.next(120))["stage"] == "error":
                    out.errors.append(f"lower_fence: {last['error']}")
                lowered.finish()
            removed = ferry.run("pg", "capture", "remove", "--source", src)
            if removed.returncode != 0:
                out.errors.append(f"capture remove: {error_line(removed.stderr) or removed.stderr[-200:]}")
            out.leftovers = leftovers(before, src_su)
            out.kills = follower.kills
            out.applied = follower.applied + out.drained
            out.errors = follower.errors() + out.errors  # the follower's first: the cause, before its effects
            for w in writers:
                out.acked += len(w.stats.acked)
                out.refused += sum(w.stats.refused.values())
                out.ambiguous += w.stats.ambiguous
                out.unexpected_writer_errors += w.stats.unexpected
                out.ops.update(w.stats.ops)
                out.refused_by.update(w.stats.refused)
            out.seconds = time.monotonic() - started
    return out


def _chaos(opts: Options, seed: int, rng: random.Random, follower: Follower, out: Outcome) -> None:
    """The writers run; the follower is killed at random moments (each after it applied something)
    and started again; one that fails by itself is started again too, up to three times in a row."""
    window_end = time.monotonic() + opts.seconds
    kill_at = sorted(time.monotonic() + rng.uniform(0.05, 1.0) * opts.seconds for _ in range(opts.kills))
    failures_in_row = 0
    while time.monotonic() < window_end or kill_at:
        if not follower.alive():
            follower._finished()
            run = follower.current
            if run is not None and not run.killed:
                failures_in_row += 1
                _say(opts, seed, f"follower ended by itself: {run.error}")
                if failures_in_row > 3:
                    out.problems.append(f"the follow stalled: failed {failures_in_row} times in a row: {run.error}")
                    return
                out.restarts_after_error += 1
            follower.start_follow()
            state = follower.wait(lambda s: s.get("phase") == "live", timeout=300)
            if state == "ok":
                continue
            continue  # exited or timed out: handled at the top of the loop
        if kill_at and time.monotonic() >= kill_at[0]:
            # Only once it applied something (or nothing waits): progress between kills, whatever the load.
            state = follower.wait(lambda s: s.get("applied", 0) > 0 or s.get("queued") == 0, timeout=300)
            if state == "ok":
                kill_at.pop(0)
                follower.kill()
                failures_in_row = 0
                _say(opts, seed, f"follower killed (kill {follower.kills})")
                follower.start_follow()
            continue
        if not kill_at and time.monotonic() >= window_end:
            break
        time.sleep(0.05)
