"""ferry as the harness drives it: its command line as a child process, and the one adapter that calls
its library (the fence has no CLI command), run in a child process too.

The adapter's child is ``bench/capture_chaos.py --adapter``: its ``sys.path`` starts at
``--ferry-root``, so a half-edited checkout never breaks the harness itself, and the library
version matches the CLI's. Nothing here imports ferry at module level.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

#: The checkout this harness lives in (the default ``--ferry-root``).
ROOT = Path(__file__).resolve().parent.parent.parent
#: The script whose ``--adapter`` runs :func:`ferry_freeze` in a child process.
ADAPTER_SCRIPT = ROOT / "bench" / "capture_chaos.py"

# ---------------------------------------------------------------------------------------------
# The adapter: the only place the harness calls ferry's library (the fence has no CLI command).
# ---------------------------------------------------------------------------------------------


def ferry_freeze(source_url: str, target_url: str, pause_fks: bool, pause: Callable[[str, dict[str, Any]], None],
                 *, only_lower: bool = False) -> None:  # fmt: skip
    """The freeze, as the runbook does it, stopping at each stage for the harness (*pause*):
    ``fenced`` (the fence is up: the harness stops the follower), ``drained`` (to the marker, then
    sequences, keyless tables, large objects and constraints back, and ferry's own proof where
    this ferry has one), ``proved`` (that proof again, as right before the switch: the harness
    compares), then the fence is lowered. *pause_fks*: the target
    role cannot set session_replication_role, so the foreign keys the follow took off are
    validated too. *only_lower*: just lower a fence left up."""
    from migration.postgres.capture import (
        copy_keyless_tables,
        drain_to_marker,
        lower_fence,
        raise_fence,
        restore_constraints,
        sync_large_objects,
        sync_sequences,
        validate_constraints,
    )

    with psycopg.connect(source_url, autocommit=True) as src, psycopg.connect(target_url, autocommit=True) as dst:
        try:
            if only_lower:
                return
            fence = raise_fence(src, grace_seconds=1.0)
            pause("fenced", {"marker": fence.marker, "ended": fence.ended, "seconds": round(fence.seconds, 3)})
            out: dict[str, Any] = {"applied": drain_to_marker(src, dst, fence.marker)}
            out["sequences"] = sync_sequences(src, dst)
            out["keyless"] = copy_keyless_tables(src, dst)
            out["large_objects"] = sync_large_objects(src, dst)
            out["restored"] = restore_constraints(dst)
            out["validated"] = validate_constraints(dst) if pause_fks else 0
            witness = getattr(fence, "witness", None)  # ferry's own proof that nothing escaped, if it has one

            def proof() -> dict[str, Any]:
                """What the run asks before its switch: sequences copied again (nextval passes the fence), the
                catalogs and counts compared (the verify's quick part), and the witness checked."""
                if witness is None:
                    return {}
                try:
                    from migration.postgres import verify_databases
                    from migration.postgres.capture import verify_frozen

                    sync_sequences(src, dst)
                    found = [*verify_databases(source_url, target_url, mode="quick").differences]
                    found += verify_frozen(source_url, target_url, witness).differences
                    return {"proof": "identical" if not found else "; ".join(str(d) for d in found[:4])}
                except Exception as exc:
                    return {"proof": f"unavailable ({type(exc).__name__}: {exc})"}

            pause("drained", {**out, **proof()})
            pause("proved", proof())  # again, as right before the switch
        finally:
            lower_fence(src)


def adapter_main(argv: list[str]) -> int:
    """The child's side of :func:`ferry_freeze`: each stage one JSON line out, one line in to go on."""
    args = json.loads(argv[0])
    sys.path.insert(0, args["ferry_root"])

    def pause(stage: str, info: dict[str, Any]) -> None:
        print(json.dumps({"stage": stage, **info}), flush=True)
        if sys.stdin.readline().strip() != "go":
            raise SystemExit(1)  # the harness went away: lower the fence (finally) and end

    stage = "start"
    try:
        ferry_freeze(args["source"], args["target"], args["pause_fks"], pause, only_lower=args.get("only_lower", False))
        stage = "lowered"
    except Exception as exc:  # one line for the harness, the traceback on stderr
        traceback.print_exc()
        first = (str(exc).strip().splitlines() or [""])[0]
        print(json.dumps({"stage": "error", "error": f"{type(exc).__name__}: {first}"}), flush=True)
        return 2
    print(json.dumps({"stage": stage}), flush=True)
    return 0


# ---------------------------------------------------------------------------------------------
# ferry as a child process
# ---------------------------------------------------------------------------------------------


class Ferry:
    """Runs ``python -m migration`` from *root* (its checkout wins over the installed one)."""

    def __init__(self, root: Path, python: str = sys.executable) -> None:
        self.root = root
        self.python = python
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.env.pop("FERRY_CRASH_AT", None)

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, "-m", "migration", *args],
            cwd=self.root, env=self.env, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            return subprocess.Popen(
                [self.python, "-m", "migration", *args],
                cwd=self.root, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def freeze(self, source: str, target: str, *, pause_fks: bool = False, only_lower: bool = False) -> Freeze:
        payload = {"source": source, "target": target, "pause_fks": pause_fks, "only_lower": only_lower,
                   "ferry_root": str(self.root)}  # fmt: skip
        proc = subprocess.Popen(
            [self.python, str(ADAPTER_SCRIPT), "--adapter", json.dumps(payload)],
            cwd=self.root, env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True,
        )  # fmt: skip
        return Freeze(proc)


class Freeze:
    """The adapter's child process, stage by stage: :meth:`next` waits for its next stage's line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(proc.stdout, self.lines), daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    @staticmethod
    def _read(stream: Any, into: queue.Queue[str | None]) -> None:
        for line in stream:
            into.put(line)
        into.put(None)

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def next(self, timeout: float = 600) -> dict[str, Any]:
        """The next stage (``fenced``, ``drained``, ``lowered``, or ``error`` with its line)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                return {"stage": "error", "error": f"the freeze did not answer within {timeout:.0f} s (hung; killed)"}
            if line is None:
                code = self.proc.wait()
                return {
                    "stage": "error",
                    "error": f"the freeze's process ended ({code}): {''.join(self.stderr)[-300:]}",
                }
            with contextlib.suppress(ValueError):
                return dict(json.loads(line))

    def go(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError, ValueError):
            self.proc.stdin.write("go\n")
            self.proc.stdin.flush()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def lower(self) -> dict[str, Any]:
        """Past every stage left (the fence comes down at the end); the last line."""
        last: dict[str, Any] = {"stage": "error", "error": "no answer"}
        for _ in range(4):
            self.go()
            last = self.next(120)
            if last["stage"] in ("lowered", "error"):
                break
        self.finish()
        return last

    def finish(self, timeout: float = 120) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def error_line(text: str) -> str | None:
    """The ferry error line of a run's output (or the last line of a traceback)."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("ferry: error:") or line.startswith("ferry: internal error:"):
            return line
    if any(ln.startswith("Traceback") for ln in lines):
        return lines[-1]
    return None
