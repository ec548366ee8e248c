"""``ferry rehearse``: the whole runbook against local servers while an app keeps writing.

Starts two PostgreSQL clusters, two Redis servers and a local S3 (moto), fills the sources
with a small shop, starts the app (:mod:`migration.rehearse.app`) on a local platform (an env
file for config vars, a flag file for maintenance, a release number the app restarts on), runs
``ferry run`` exactly as on the day (same phases, same code; only the platform is local and the
target is given as URLs), and measures what the app saw: per store, the writes it had acknowledged
and lost, and how long writes and reads were unavailable.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import psycopg
import yaml

from migration.errors import LocalServerError, UsageError
from migration.platform.local import LocalPlatform, write_env_file
from migration.redis.connection import RespConn
from migration.redis.url import parse_redis_url
from migration.rehearse.dataset import fill_buckets, fill_postgres, fill_redis
from migration.rehearse.lost import Sides, acknowledged_before, lost_writes
from migration.rehearse.motoserver import running_moto
from migration.rehearse.pgcluster import Cluster, free_port, running_cluster, stop_process
from migration.rehearse.redisserver import running_redis
from migration.rehearse.report import AppLog, Rehearsal, longest, read_app_log, write_reports
from migration.rehearse.rollback import RollbackOutcome, freeze_window, roll_back_while_writing, rollback_outcome
from migration.runbook import RunSettings, finish, run
from migration.runbook.state import RunState
from migration.runbook.stores.s3 import APP_KEY_ENV
from migration.runbook.verify import BACK

__all__ = ["RehearsalOptions", "rehearse"]

STACK = "rehearsal"
APP = "shop"
SOURCE_BUCKET = "shop-uploads-heroku"
TARGET_BUCKET = f"{APP}-{STACK}-uploads"  # what the stack's storage component names it
BUCKET_VARS = {
    "bucket": "S3_BUCKET",
    "region": "AWS_REGION",
    "accessKeyId": "AWS_ACCESS_KEY_ID",
    "secretAccessKey": "AWS_SECRET_ACCESS_KEY",
}


@dataclass(frozen=True)
class RehearsalOptions:
    """:param customers: shop size (orders x3, order items x9). :param keep: keep the work directory."""

    report_dir: Path
    customers: int = 20_000
    sessions: int = 5_000
    objects: int = 200
    jobs: int = 2
    keep: bool = False
    #: PostgreSQL copied and followed while the app writes; the freeze only drains the change log.
    capture: bool = True
    #: Freeze with capture's fence (reads go on), else maintenance mode.
    fence: bool = True
    #: How long the app takes to boot after each release (a dyno's restart).
    boot_seconds: float = 1.0
    #: After the switch the app writes to the new stores this long, then the run is rolled back (``None``: it
    #: is not: the move is made final with ``ferry finish``).
    rollback_after_seconds: float | None = None
    #: Run the data-plane phases as tasks of this runner (``local``: child processes), as ``--runner`` does.
    runner: str | None = None
    #: How many tasks share the PostgreSQL copy.
    tasks: int = 1


def _stack_file(root: Path, app_port: int, capture: bool = True, fence: bool = True) -> None:
    """What ``Pulumi.rehearsal.yaml`` would say; the target exists already, so nothing is provisioned."""
    config = {
        "aws:region": "us-east-1",
        "ferry:app": APP,
        "ferry:heroku": {"app": "shop-rehearsal", "databaseAddon": "postgresql-local-1", "redisAddon": "redis-local-1"},
        "ferry:network": {"availabilityZones": ["us-east-1a", "us-east-1b"], "allowedCidrs": ["127.0.0.0/8"]},
        "ferry:reach": {"app": "vpc"},  # the app runs next to its stores
        "ferry:database": {"instanceClass": "db.t4g.micro", "databases": [APP]},
        "ferry:cache": {"nodeType": "cache.t4g.micro", "replicas": 0},
        "ferry:storage": {
            "buckets": [
                {
                    "name": "uploads",
                    "source": SOURCE_BUCKET,
                    "configVars": BUCKET_VARS,
                }
            ],
            "appUser": "shop-rehearsal",
        },
        "ferry:migration": {
            "postgres": True,
            "redis": True,
            "s3": True,
            "jobs": 2,
            "capture": capture,
            "freeze": "fence" if fence else "maintenance",
            "drainSeconds": 1,
            "smokeUrls": [f"http://127.0.0.1:{app_port}/health"],
        },
    }
    (root / f"Pulumi.{STACK}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))


def _create_database(cluster: Cluster) -> str:
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {APP}")
    return cluster.url(APP)


def _s3_environment(endpoint: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for side in ("SOURCE", "TARGET"):
        env |= {
            f"FERRY_S3_{side}_ENDPOINT_URL": endpoint,
            f"FERRY_S3_{side}_REGION": "us-east-1",
            f"FERRY_S3_{side}_ACCESS_KEY_ID": "rehearsal",
            f"FERRY_S3_{side}_SECRET_ACCESS_KEY": "rehearsal-secret",
        }
    return env


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def _app(
    platform_dir: Path, log: Path, port: int, boot_seconds: float, s3_endpoint: str
) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        sys.executable,
        "-m",
        "migration.rehearse.app",
        str(platform_dir),
        str(log),
        str(port),
        str(boot_seconds),
    ]
    app = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env={**os.environ, "FERRY_REHEARSAL_S3_ENDPOINT": s3_endpoint},
    )  # fmt: skip
    try:
        yield app
    finally:
        stop_process(app, timeout=15)


def _web_writes(log: Path) -> int:
    """How many web writes the app has had acknowledged by PostgreSQL so far."""
    if not log.exists():
        return 0
    return sum(line.startswith("ack postgres") and " web " in line for line in log.read_text().splitlines())


def _wait_for_writes(app: subprocess.Popen[bytes], log: Path, count: int) -> None:
    deadline = time.monotonic() + 30
    while _web_writes(log) < count:
        if app.poll() is not None:
            stderr = app.stderr.read().decode(errors="replace") if app.stderr else ""
            raise LocalServerError(f"the rehearsal app stopped: {(stderr.strip().splitlines() or ['no output'])[-1]}")
        if time.monotonic() > deadline:
            raise LocalServerError("the rehearsal app made no writes in 30 s")
        time.sleep(0.05)


def _until(log: AppLog, moment: float) -> AppLog:
    """The app's log as it stood at *moment*: what the forward move is measured on, apart from the rollback."""
    return replace(
        log,
        acknowledged=acknowledged_before(log.acknowledged, moment),
        write_windows={store: [w for w in spans if w[0] < moment] for store, spans in log.write_windows.items()},
        read_windows=[w for w in log.read_windows if w[0] < moment],
    )


def _require_writable(directory: Path) -> None:
    """The reports are written last, after the servers, the data and the whole run: a directory
    that cannot take them must fail now, not after all that."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".ferry-probe-"):
            pass
    except OSError as exc:
        raise UsageError(f"report directory {directory} is not writable: {exc.strerror or exc}") from exc


def rehearse(options: RehearsalOptions, say: Callable[[str], None]) -> Rehearsal:
    """Run the whole rehearsal and write its reports to ``options.report_dir``.

    :param say: receives progress lines (no secrets).
    :raises FerryError: a local server could not start, or a phase failed.
    """
    started = time.time()
    _require_writable(options.report_dir)
    shutil.rmtree(options.report_dir / "run", ignore_errors=True)  # a previous rehearsal's run state
    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="ferry-rehearsal-"))
        if options.keep:
            say(f"work directory kept: {work}")
        else:
            stack.callback(shutil.rmtree, work, True)
        say("starting two PostgreSQL clusters, two Redis servers and a local S3 (moto)")
        source_pg, target_pg = stack.enter_context(running_cluster()), stack.enter_context(running_cluster())
        source_redis = stack.enter_context(running_redis(password=secrets.token_hex(12)))
        target_redis = stack.enter_context(running_redis(password=secrets.token_hex(12)))
        s3 = stack.enter_context(running_moto())
        source_db, target_db = _create_database(source_pg), _create_database(target_pg)

        say(f"filling the sources: {options.customers} customers, {options.sessions} sessions, {options.objects} files")
        s3_env = _s3_environment(s3.endpoint)
        # The key pair the stack would make for the app's IAM user (here: anything moto takes).
        app_keys = {APP_KEY_ENV[0]: "aws-app", APP_KEY_ENV[1]: secrets.token_hex(12)}
        stack.enter_context(_environment(s3_env | app_keys))
        from migration.s3.client import S3Side

        client = S3Side.from_env("source").client()  # the environment set just above
        client.create_bucket(Bucket=SOURCE_BUCKET)
        client.create_bucket(Bucket=TARGET_BUCKET)
        with RespConn(parse_redis_url(source_redis.url(), "source")) as cache:
            dataset = {
                "rows": fill_postgres(source_db, options.customers),
                "redis keys": fill_redis(cache, options.sessions),
                "files": fill_buckets(client, SOURCE_BUCKET, options.objects),
            }

        platform_dir, log = work / "platform", work / "app.log"
        platform_dir.mkdir()
        write_env_file(
            platform_dir / "config.env",
            {
                "DATABASE_URL": source_db,
                "REDIS_URL": source_redis.url(),
                "RAILS_ENV": "production",
                "S3_BUCKET": SOURCE_BUCKET,
                "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "heroku-app",
                "AWS_SECRET_ACCESS_KEY": secrets.token_hex(12),
            },
        )
        (platform_dir / "formation.json").write_text('{"web": 1, "worker": 1}')
        app_port = free_port()
        _stack_file(work, app_port, options.capture, options.fence)

        say("starting the app: it writes and reads through DATABASE_URL, REDIS_URL and S3_BUCKET")
        app = stack.enter_context(_app(platform_dir, log, app_port, options.boot_seconds, s3.endpoint))
        _wait_for_writes(app, log, 20)

        settings = RunSettings(
            stack=STACK,
            root=work,
            state_dir=options.report_dir.resolve() / "run",  # the run's state and record.json stay with the report
            platform=f"local:{platform_dir}",
            target_url=target_db,
            target_redis_url=target_redis.url(),
            yes=True,
            jobs=options.jobs,
            runner=options.runner,
            tasks=options.tasks,
        )
        run(settings, say=say, confirm=lambda _question: True)
        _wait_for_writes(app, log, _web_writes(log) + 20)  # the app writes on the target too
        # As the forward move left them: a rollback's freeze and drain take the same sections over.
        forward_freeze = _freeze_summary(RunState.load(settings.state_file, STACK))
        began = None
        if options.rollback_after_seconds is not None:
            began = roll_back_while_writing(
                settings,
                options.rollback_after_seconds,
                lambda more: _wait_for_writes(app, log, _web_writes(log) + more),
                say,
            )
        else:
            finish(settings, say=say)  # the move is final: nothing follows the new stores back any more
        stop_process(app, timeout=15)

        app_log = read_app_log(log)
        origin = app_log.started  # the timeline starts when the app does; setup before it is reported apart
        state = RunState.load(settings.state_file, STACK)
        new = Sides(target_db, target_redis.url(), TARGET_BUCKET)
        backed: RollbackOutcome | None = None
        if began is not None:
            config = LocalPlatform(platform_dir).config_vars()
            back_on_old = config.get("DATABASE_URL") == source_db and config.get("S3_BUCKET") == SOURCE_BUCKET
            old = Sides(source_db, source_redis.url(), SOURCE_BUCKET)
            backed = rollback_outcome(
                state, app_log, began, old, new, client, back_on_old, options.rollback_after_seconds or 0.0
            )
            # The forward move as the app saw it: until the rollback began, against the new stores then.
            app_log = _until(app_log, began)
            lost = lost_writes(new, client, acknowledged_before(app_log.acknowledged, began), last_upload=False)
        else:
            lost = lost_writes(new, client, app_log.acknowledged, last_upload=True)
        verification = {name: report for name, report in state.verify.items() if not name.startswith(BACK)}
        switched_to = TARGET_BUCKET if began is not None else LocalPlatform(platform_dir).config_vars().get("S3_BUCKET")
        result = Rehearsal(
            phases=[
                {
                    "name": name,
                    "status": record.status,
                    "seconds": record.seconds,
                    "offset_seconds": round(record.started_at - origin, 3),
                    "detail": record.detail,
                }
                for name, record in state.phases.items()
            ],
            write_unavailable_seconds=app_log.longest_unavailable,
            write_windows=app_log.windows,
            read_unavailable_seconds=longest(app_log.read_windows),
            read_windows=app_log.read_windows,
            acknowledged_writes=sum(len(acks) for acks in app_log.acknowledged.values()),
            lost_writes=sum(lost.values()),
            acknowledged_by_store={store: len(acks) for store, acks in app_log.acknowledged.items()},
            lost_writes_by_store=lost,
            write_unavailable_by_store={store: longest(w) for store, w in app_log.write_windows.items()},
            releases_in_freeze=state.releases_in_freeze,
            restarts=app_log.restarts,
            verified=bool(verification)
            and all(_identical(report) for report in verification.values())
            and switched_to == TARGET_BUCKET,  # the app's uploads go to the new bucket from now on
            verification={store: _summary(report) for store, report in verification.items()},
            dataset=dataset,
            started_at=origin,
            seconds=time.time() - origin,
            setup_seconds=origin - started,
            freeze=forward_freeze,
            rollback=backed.to_json() if backed is not None else None,
        )
    write_reports(result, options.report_dir)
    return result


def _freeze_summary(state: RunState) -> dict[str, Any]:
    window = freeze_window(state)
    if not window:
        return {}
    sections = state.sections()
    return {
        **window,
        "lag_before": {name: lag for name, section in sections.items() if (lag := section.get("lag_at_freeze"))},
        "drained": sum(section.get("drained") or 0 for section in sections.values()),
        "s3_after_switch": sections.get("s3", {}).get("after_switch", {}),
    }


def _identical(report: dict[str, Any]) -> bool:
    return bool(report.get("identical", not report.get("differences")))


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """A verify report without its list of differences (their count stays)."""
    return {key: value for key, value in report.items() if key != "differences"}
