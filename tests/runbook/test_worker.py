"""The worker entry point: typed jobs in, the library's follow and live copy run, one line on bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from migration.worker import WORKER_COMMAND, PostgresFollowJob, RedisLiveCopyJob, job_from_json, job_to_json
from tests.conftest import Database
from tests.helpers import ferry


def test_jobs_survive_their_json_form(tmp_path: Path) -> None:
    jobs = [
        PostgresFollowJob("postgresql://a/b", "postgresql://c/d", tmp_path / "s.json", batch=7, capture_schema="cap"),
        RedisLiveCopyJob("redis://a", "redis://b", tmp_path / "r.json", merge=True, jobs=3),
    ]
    for job in jobs:
        assert job_from_json(job_to_json(job)) == job


BAD_JOBS = [
    ("", "not JSON"),
    ("[1]", "not a JSON object"),
    ('{"kind": "postgres-copy"}', "unknown job kind 'postgres-copy'"),
    ('{"kind": "postgres-follow", "source_url": "postgresql://u:pw-w1@h/d", "target_url": "x"}', "status_file"),
    (
        '{"kind": "postgres-follow", "source_url": "postgresql://u:pw-w1@h/d", "target_url": "x", '
        '"status_file": "s", "batch": 0}',
        "batch must be a positive integer",
    ),
    ('{"kind": "redis-live-copy", "source_url": 5, "target_url": "x", "status_file": "s"}', "source_url"),
    ('{"kind": "redis-live-copy", "source_url": "a", "target_url": "b", "status_file": "s", "merge": "yes"}', "merge"),
    ('{"kind": "redis-live-copy", "source_url": "a", "target_url": "b", "status_file": "s", "flush": 1}', "flush"),
]


@pytest.mark.parametrize(("text", "fragment"), BAD_JOBS)
def test_a_bad_job_is_one_line_and_exit_2(text: str, fragment: str) -> None:
    run = subprocess.run(WORKER_COMMAND, input=text, capture_output=True, text=True, timeout=60, check=False)
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith("ferry: error: worker: ") and fragment in lines[0]
    assert "pw-w1" not in run.stderr and "Traceback" not in run.stderr


def test_a_follow_job_follows_until_sigterm_and_keeps_its_urls_off_the_process(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    source_db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'a' FROM generate_series(1, 50) g"
    )
    assert ferry("pg", "capture", "install", "--source", source_db.url).code == 0
    assert ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url).code == 0
    status = tmp_path / "status.json"
    job = PostgresFollowJob(source_db.url, target_db.url, status)
    worker = subprocess.Popen(WORKER_COMMAND, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert worker.stdin is not None
    worker.stdin.write(job_to_json(job))
    worker.stdin.close()
    worker.stdin = None  # written and closed: communicate() has nothing to send
    try:
        source_db.execute("UPDATE t SET v = 'b' WHERE id <= 10; DELETE FROM t WHERE id = 50")
        deadline = time.monotonic() + 60
        while (
            target_db.scalar("SELECT count(*) FROM t WHERE v = 'b'") != 10
            or target_db.scalar("SELECT count(*) FROM t") != 49
        ):
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "the worker did not apply the changes"
            time.sleep(0.1)
        assert json.loads(status.read_text())["phase"] == "live"
        # The job's URLs (and their passwords) are on neither its command line nor its environment.
        password = source_db.cluster.password
        proc = Path(f"/proc/{worker.pid}")
        assert password not in (proc / "cmdline").read_bytes().decode(errors="replace")
        assert password not in (proc / "environ").read_bytes().decode(errors="replace")
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert json.loads(status.read_text())["phase"] == "stopped"
    assert "postgres follow: applied" in err and source_db.cluster.password not in err


def test_the_cli_follow_has_no_hidden_runbook_flag() -> None:
    run = ferry("pg", "follow", "--leave-constraints-paused")
    assert run.code == 2 and "No such option" in run.output


def test_a_pid_left_in_the_state_that_is_no_worker_is_never_signalled(tmp_path: Path) -> None:
    """After a reboot (or once the worker is gone) its number may be another process's: found by what it
    runs, a process that is not a ferry worker is neither waited for nor sent SIGTERM."""
    from migration.runbook.follower import Follower
    from migration.runbook.state import FollowerState

    other = subprocess.Popen(["sleep", "60"])
    try:
        saved: list[int | None] = []
        state = FollowerState(pid=other.pid)
        follower = Follower("postgres", tmp_path, state, lambda: saved.append(state.pid))
        assert follower.alive() is False
        assert follower.stop() is False and follower.drain(5) is False
        assert other.poll() is None  # still running: nothing was sent to it
        assert state.pid is None and saved == [None]
    finally:
        other.kill()
        other.wait()


def test_a_worker_is_known_by_what_it_works_for_not_by_its_command_alone(tmp_path: Path) -> None:
    """Another stack's worker (same command) under a pid the state names is not this follower's."""
    import os
    import sys

    from migration.runbook.follower import Follower
    from migration.runbook.state import FollowerState

    ours = Follower("redis", tmp_path / "a", FollowerState(), lambda: None)
    looks_alike = [sys.executable, "-c", "import time; time.sleep(60)", "migration.worker"]
    for works_for, expected in ((tmp_path / "b" / "redis-live.json", False), (ours.status_file, True)):
        env = {**os.environ, "FERRY_WORKER_FOR": str(works_for)}
        process = subprocess.Popen(looks_alike, env=env, start_new_session=True)
        try:
            state = FollowerState(pid=process.pid)
            follower = Follower("redis", tmp_path / "a", state, lambda: None)
            time.sleep(0.2)  # its environment is readable once it runs
            assert follower.alive() is expected
        finally:
            process.kill()
            process.wait()
