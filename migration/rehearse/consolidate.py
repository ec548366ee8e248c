"""``ferry rehearse --databases N``: several databases of two apps consolidated into one instance, move by move.

The sources are N databases under Heroku-like names on one server, read by two apps through their own
variables (``DATABASE_URL`` of each, ``HEROKU_POSTGRESQL_ONYX_URL`` of the first, …); the target is one
server with the stack's uniform names (``shop``, ``blog``, ``analytics``, …). The stack file lists one move per
database; ``ferry run`` moves them one at a time, each with its own freeze, verify and switch, while both apps
keep writing. With ``fail_move`` a failure is injected into that move's verify (inside its freeze): the run
stops there with that move rolled back and the ones before it switched, and a second ``ferry run`` finishes the
rest. Every acknowledged write of each app through each variable is looked for in the move's target database.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml

from migration.errors import FerryError, UsageError
from migration.platform.local import LocalPlatform, write_env_file
from migration.rehearse.app import MORE_DATABASES_ENV
from migration.rehearse.dataset import fill_postgres
from migration.rehearse.pgcluster import Cluster, free_port, running_cluster
from migration.rehearse.report import longest, read_app_log
from migration.rehearse.rollback import freeze_window
from migration.runbook import RunSettings
from migration.runbook.moves import finish_moves, run_moves
from migration.runbook.state import RunState

__all__ = ["MOVES", "MovesRehearsal", "rehearse_moves"]

STACK = "rehearsal"

#: The moves a rehearsal of N databases makes, the first N: (move and target database, app, variable).
MOVES: tuple[tuple[str, str, str], ...] = (
    ("shop", "shop-rehearsal", "DATABASE_URL"),
    ("blog", "blog-rehearsal", "DATABASE_URL"),
    ("analytics", "shop-rehearsal", "HEROKU_POSTGRESQL_ONYX_URL"),
    ("comments", "blog-rehearsal", "HEROKU_POSTGRESQL_AMBER_URL"),
    ("billing", "shop-rehearsal", "HEROKU_POSTGRESQL_COBALT_URL"),
)


@dataclass
class MovesRehearsal:
    """What the apps saw and each move did; ``to_json()`` is what ``--json`` prints."""

    moves: list[dict[str, Any]]
    failed_first: dict[str, Any] | None
    seconds: float
    files: dict[str, str] = field(default_factory=dict)

    @property
    def lost_writes(self) -> int:
        return sum(int(move["lost_writes"]) for move in self.moves)

    @property
    def verified(self) -> bool:
        return bool(self.moves) and all(move["verified"] for move in self.moves)

    def to_json(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "lost_writes": self.lost_writes,
            "acknowledged_writes": sum(int(move["acknowledged_writes"]) for move in self.moves),
            "moves": self.moves,
            "failed_first": self.failed_first,
            "seconds": round(self.seconds, 3),
            "files": self.files,
        }


def _stack_file(root: Path, count: int, together: bool = False) -> None:
    moves = [
        {"name": name, "app": app, "database": name, "databaseAddon": f"postgresql-local-{i + 1}",
         "databaseConfigVar": var, **({"together": app} if together else {})}
        for i, (name, app, var) in enumerate(MOVES[:count])
    ]  # fmt: skip
    if together:  # each app's moves next to each other, switched in one freeze
        moves.sort(key=lambda move: [app for _, app, _ in MOVES].index(str(move["app"])))
    config = {
        "aws:region": "us-east-1",
        "ferry:app": "shop",
        "ferry:heroku": {"app": "shop-rehearsal"},
        "ferry:network": {"availabilityZones": ["us-east-1a", "us-east-1b"], "allowedCidrs": ["127.0.0.0/8"]},
        "ferry:reach": {"app": "vpc"},
        "ferry:database": {"instanceClass": "db.t4g.micro", "databases": [name for name, _, _ in MOVES[:count]]},
        "ferry:moves": moves,
        "ferry:migration": {"postgres": True, "jobs": 2, "capture": True, "freeze": "fence", "drainSeconds": 1},
    }
    (root / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))


@contextmanager
def _apps(platform: Path, work: Path, count: int, boot_seconds: float) -> Iterator[dict[str, Path]]:
    """One app process per Heroku app, each writing through every database variable it has; their logs."""
    import subprocess
    import sys

    from migration.rehearse.pgcluster import stop_process

    logs, started = {}, []
    try:
        for app in dict.fromkeys(app for _, app, _ in MOVES[:count]):
            more = [var for _, owner, var in MOVES[:count] if owner == app and var != "DATABASE_URL"]
            logs[app] = work / f"{app}.log"
            command = [sys.executable, "-m", "migration.rehearse.app", str(platform / app), str(logs[app]),
                       str(free_port()), str(boot_seconds)]  # fmt: skip
            env = {**os.environ, MORE_DATABASES_ENV: ",".join(more)}
            started.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env))
        yield logs
    finally:
        for process in started:
            stop_process(process, timeout=15)


def _acknowledged(log: Path, var: str) -> int:
    if not log.exists():
        return 0
    acks = read_app_log(log).acknowledged
    return len(acks.get("postgres" if var == "DATABASE_URL" else f"pg:{var}", {}))


def _wait_for_writes(logs: dict[str, Path], count: int) -> None:
    deadline = time.monotonic() + 30
    while any(_acknowledged(log, "DATABASE_URL") < count for log in logs.values()):
        if time.monotonic() > deadline:
            raise UsageError("the rehearsal apps made no writes in 30 s")
        time.sleep(0.05)


def _lost(url: str, ids: set[int]) -> int:
    with psycopg.connect(url) as conn:
        present = {int(row[0]) for row in conn.execute("SELECT id FROM app_writes").fetchall()}
    return len(ids - present)


def _move_result(
    name: str, app: str, var: str, target: Cluster, logs: dict[str, Path], run_dir: Path
) -> dict[str, Any]:
    store = "postgres" if var == "DATABASE_URL" else f"pg:{var}"
    log = read_app_log(logs[app])
    acks = log.acknowledged.get(store, {})
    state = RunState.load(run_dir / "moves" / name / "state.json", STACK)
    reports = [report for store, report in state.verify.items() if not store.startswith("back:")]
    window = freeze_window(state)
    return {
        "name": name,
        "app": app,
        "config_var": var,
        "database": name,
        "verified": bool(reports) and all(r.get("identical", not r.get("differences")) for r in reports),
        "acknowledged_writes": len(acks),
        "lost_writes": _lost(target.url(name), set(acks)),
        "write_freeze_seconds": window.get("seconds") if window else None,
        # What the app saw, by its own log: the longest time its writes through this variable failed.
        "write_unavailable_seconds": round(longest(log.write_windows.get(store, [])), 3),
        "switched": state.done("switch"),
    }


def rehearse_moves(
    report_dir: Path, count: int, *, customers: int, jobs: int, boot_seconds: float, fail_move: str | None,
    keep: bool, say: Callable[[str], None], crash_at: str | None = None, together: bool = False,
) -> MovesRehearsal:  # fmt: skip
    """Consolidate *count* databases of two apps into one target server, move by move, while the apps write.

    :param fail_move: inject a failure into this move's verify (its first attempt only).
    :param together: each app's moves switched together, in one freeze (``together:``).
    :param crash_at: first run ``ferry run`` as a process killed (``kill -9``) at this crash point
        (``FERRY_CRASH_AT``), then go on.
    :raises FerryError: a server could not start, or a move failed (but the injected failure).
    """
    if not 2 <= count <= len(MOVES):
        raise UsageError(f"--databases takes 2 to {len(MOVES)} databases, not {count}")
    names = [name for name, _, _ in MOVES[:count]]
    if fail_move is not None and fail_move not in names:
        raise UsageError(f"--fail-move {fail_move!r} is none of the moves: {', '.join(names)}")
    started = time.time()
    run_dir = report_dir.resolve() / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="ferry-rehearsal-"))
        if not keep:
            stack.callback(shutil.rmtree, work, True)
        say(f"starting two PostgreSQL servers: {count} source databases, one target instance")
        source, target = stack.enter_context(running_cluster()), stack.enter_context(running_cluster())
        platform = work / "platform"
        config: dict[str, dict[str, str]] = {}
        with (
            psycopg.connect(source.url(), autocommit=True) as src,
            psycopg.connect(target.url(), autocommit=True) as dst,
        ):
            for i, (name, app, var) in enumerate(MOVES[:count]):
                src.execute(f"CREATE DATABASE heroku_d{i + 1}")  # Heroku's names; the target's are the stack's
                dst.execute(f"CREATE DATABASE {name}")
                fill_postgres(source.url(f"heroku_d{i + 1}"), max(100, customers // count))
                config.setdefault(app, {"RAILS_ENV": "production"})[var] = source.url(f"heroku_d{i + 1}")
        for app, values in config.items():
            (platform / app).mkdir(parents=True)
            write_env_file(platform / app / "config.env", values)
            (platform / app / "formation.json").write_text('{"web": 1, "worker": 1}')
        _stack_file(work, count, together)
        say(f"starting the apps ({', '.join(config)}): each writes through every database variable it has")
        apps = ExitStack()
        stack.enter_context(apps)
        logs = apps.enter_context(_apps(platform, work, count, boot_seconds))
        _wait_for_writes(logs, 20)
        settings = RunSettings(stack=STACK, root=work, state_dir=run_dir, platform=f"local:{platform}",
                               target_url=target.url(), yes=True, jobs=jobs)  # fmt: skip
        failed_first = None
        if crash_at is not None:
            _killed_run(settings, crash_at, say)
        if fail_move is not None:
            os.environ["FERRY_FAIL_AT"] = f"phase-verify@{fail_move}"
            try:
                run_moves(settings, say=say, confirm=lambda _q: True)
            except FerryError as exc:
                failed_first = _after_failure(fail_move, exc.message, run_dir, config, platform)
                say(f"the injected failure: {exc.message}")
            finally:
                del os.environ["FERRY_FAIL_AT"]
            if failed_first is None:
                raise UsageError(f"the failure injected into move {fail_move} did not stop the run")
        run_moves(settings, say=say, confirm=lambda _q: True)
        _wait_for_writes(logs, max(_acknowledged(log, "DATABASE_URL") for log in logs.values()) + 20)
        finish_moves(settings, say=say)
        apps.close()  # the apps stop: every write they were acknowledged is in their logs
        result = MovesRehearsal(
            moves=[_move_result(name, app, var, target, logs, run_dir) for name, app, var in MOVES[:count]],
            failed_first=failed_first,
            seconds=time.time() - started,
        )
    write_moves_report(result, report_dir)
    return result


def _killed_run(settings: RunSettings, crash_at: str, say: Callable[[str], None]) -> None:
    """``ferry run`` as its own process, killed at *crash_at*: what the next run resumes from."""
    import subprocess
    import sys

    assert settings.target_url is not None
    command = [sys.executable, "-m", "migration", "run", "--stack", STACK, "--root", str(settings.root),
               "--state-dir", str(settings.state_dir), "--platform", settings.platform, "--yes"]  # fmt: skip
    env = {**os.environ, "FERRY_CRASH_AT": crash_at, "FERRY_TARGET_URL": settings.target_url}
    ended = subprocess.run(command, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    if ended.returncode != -9:
        tail = ended.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise UsageError(f"ferry run was not killed at {crash_at} (exit {ended.returncode}: {tail})")
    say(f"ferry run killed at {crash_at}, as by kill -9")


def _after_failure(
    name: str, message: str, run_dir: Path, config: dict[str, dict[str, str]], platform: Path
) -> dict[str, Any]:
    """What the failed run left: the failed move rolled back (its app on its old database); which moves were
    switched then, and which rolled back (with ``together``, the failed move's partners too)."""
    app, var = next((a, v) for n, a, v in MOVES if n == name)
    states = {n: RunState.load(run_dir / "moves" / n / "state.json", STACK) for n, _, _ in MOVES}
    on_old = LocalPlatform(platform / app).config_vars().get(var) == config[app][var]
    return {
        "move": name,
        "message": message,
        "rolled_back": states[name].rolled_back and on_old,
        "switched_before": [n for n, state in states.items() if state.done("switch")],
        "rolled_back_moves": [n for n, state in states.items() if state.rolled_back],
    }


def write_moves_report(result: MovesRehearsal, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "rehearsal.json"
    result.files = {"json": str(path)}
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
