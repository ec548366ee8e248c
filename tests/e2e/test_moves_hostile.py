"""Hostile tests of ``ferry:moves``: real servers, the rehearsal's app writing, ferry as a process killed by -9.

Each test reproduces one bug found by hand; each fails while the bug is there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml

from migration.platform.local import LocalPlatform, write_env_file
from migration.rehearse.app import MORE_DATABASES_ENV
from migration.rehearse.consolidate import MOVES
from migration.rehearse.dataset import fill_postgres
from migration.rehearse.pgcluster import Cluster, free_port, running_cluster, stop_process
from migration.rehearse.report import read_app_log

STACK = "rehearsal"
ROOT = Path(__file__).parents[2]


@dataclass
class Moves:
    work: Path
    source: Cluster
    target: Cluster
    platform: Path
    state: Path
    logs: dict[str, Path]

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "migration", *args, "--stack", STACK, "--root", str(self.work),
                "--state-dir", str(self.state), "--platform", f"local:{self.platform}"]  # fmt: skip

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "FERRY_TARGET_URL": self.target.url(), **extra}

    def ferry(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), env=self.env(**extra), cwd=ROOT, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=300, check=False)  # fmt: skip

    def state_of(self, move: str) -> dict[str, Any]:
        path = self.state / "moves" / move / "state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def acknowledged(self, app: str) -> set[int]:
        return set(read_app_log(self.logs[app]).acknowledged.get("postgres", {}))


@contextmanager
def two_moves(tmp_path: Path) -> Iterator[Moves]:
    """Two apps' databases (shop, blog) on a source server, a target server, both apps writing."""
    with ExitStack() as stack:
        source, target = stack.enter_context(running_cluster()), stack.enter_context(running_cluster())
        platform, config = tmp_path / "platform", {}
        with (
            psycopg.connect(source.url(), autocommit=True) as src,
            psycopg.connect(target.url(), autocommit=True) as dst,
        ):
            for i, (name, app, var) in enumerate(MOVES[:2]):
                src.execute(f"CREATE DATABASE heroku_d{i + 1}")
                dst.execute(f"CREATE DATABASE {name}")
                fill_postgres(source.url(f"heroku_d{i + 1}"), 100)
                config[app] = {"RAILS_ENV": "production", var: source.url(f"heroku_d{i + 1}")}
        for app, values in config.items():
            (platform / app).mkdir(parents=True)
            write_env_file(platform / app / "config.env", values)
            (platform / app / "formation.json").write_text('{"web": 1, "worker": 1}')
        moves = [{"name": name, "app": app, "database": name, "databaseAddon": f"postgresql-local-{i + 1}",
                  "databaseConfigVar": var} for i, (name, app, var) in enumerate(MOVES[:2])]  # fmt: skip
        document = {"config": {
            "aws:region": "us-east-1", "ferry:app": "shop", "ferry:heroku": {"app": "shop-rehearsal"},
            "ferry:network": {"availabilityZones": ["us-east-1a", "us-east-1b"], "allowedCidrs": ["127.0.0.0/8"]},
            "ferry:reach": {"app": "vpc"},
            "ferry:database": {"instanceClass": "db.t4g.micro", "databases": ["shop", "blog"]},
            "ferry:moves": moves,
            "ferry:migration": {"postgres": True, "jobs": 2, "capture": True, "freeze": "fence", "drainSeconds": 1},
        }}  # fmt: skip
        (tmp_path / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
        logs = {}
        for app in config:
            logs[app] = tmp_path / f"{app}.log"
            process = subprocess.Popen(
                [sys.executable, "-m", "migration.rehearse.app", str(platform / app), str(logs[app]),
                 str(free_port()), "0"],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                env={**os.environ, MORE_DATABASES_ENV: ""},
            )  # fmt: skip
            stack.callback(stop_process, process, 15)
        moves_ = Moves(tmp_path, source, target, platform, tmp_path / "state", logs)
        deadline = time.monotonic() + 30
        while any(not log.exists() or len(moves_.acknowledged(app)) < 20 for app, log in logs.items()):
            assert time.monotonic() < deadline, "the apps made no writes"
            time.sleep(0.05)
        yield moves_


def _killed_when(moves: Moves, move: str, args: list[str], wanted: str, **extra: str) -> None:
    """``ferry ARGS`` as a process, killed by -9 as soon as *move*'s state records phase *wanted*."""
    process = subprocess.Popen(moves.command(*args), env=moves.env(**extra), cwd=ROOT, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while process.poll() is None:
            try:
                if wanted in moves.state_of(move).get("phases", {}):
                    os.kill(process.pid, signal.SIGKILL)
                    break
            except (ValueError, OSError):
                pass  # the state file being replaced
            time.sleep(0.002)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -9, f"ferry was not killed in its {wanted} (exit {process.returncode})"


def _write(url: str) -> str:
    """One write as the app makes it: ``ok``, or the server's refusal."""
    try:
        with psycopg.connect(url) as conn:
            conn.execute("INSERT INTO app_writes (id, kind) VALUES (-1 - (random() * 1e8)::int, 'probe')")
        return "ok"
    except psycopg.Error as exc:
        return str(exc).splitlines()[0]


def test_a_run_killed_in_a_failed_moves_own_rollback_leaves_the_app_able_to_write_once_resumed(
    tmp_path: Path,
) -> None:
    """``ferry run`` killed (-9) inside the rollback it makes of a move failed in its freeze: the next run
    resumes the move and switches it — and then, the killed rollback's record still in the move's state, every
    store is viewed as rolling back: its cleanup fences the *new* database for everyone (the app, now on it,
    can write nothing) and takes capture off the old one (the follow back's fence).

    What should be: the next run finishes the rollback (or starts the move again) and the app, once switched,
    writes to its new database."""
    with two_moves(tmp_path) as moves:
        _killed_when(moves, "blog", ["run", "--yes", "--move", "blog"], "rollback",
                     FERRY_FAIL_AT="phase-verify@blog")  # fmt: skip
        resumed = moves.ferry("run", "--yes", "--move", "blog")
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        blog_url = LocalPlatform(moves.platform / "blog-rehearsal").config_vars()["DATABASE_URL"]
        assert blog_url.endswith("/blog"), "the run says it switched blog"
        # The app is on the new database now: its writes must go through.
        assert _write(blog_url) == "ok"
        assert "rollback" not in moves.state_of("blog")["phases"] or moves.state_of("blog").get("rolled_back")


def test_a_move_failing_in_its_switch_is_rolled_back_like_any_failure_inside_its_freeze(tmp_path: Path) -> None:
    """README: "A move that fails inside its freeze is rolled back at once (its app writes to its old database
    again)". A failure in the switch phase (injected before it detached anything) leaves the app frozen —
    the fence up on its old database, nothing written anywhere — until someone runs ferry again:
    ``_roll_back_failed`` skips every move whose state has a ``switch`` record, even a failed one."""
    with two_moves(tmp_path) as moves:
        failed = moves.ferry("run", "--yes", "--move", "blog", FERRY_FAIL_AT="phase-switch@blog")
        assert failed.returncode != 0
        old = LocalPlatform(moves.platform / "blog-rehearsal").config_vars()["DATABASE_URL"]
        assert old == moves.source.url("heroku_d2"), "nothing was switched"
        assert _write(old) == "ok", "the app is left frozen on its old database"
