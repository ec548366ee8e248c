"""A copy shared between tasks: a leader (``copy_database`` with ``shared=True``) and helpers
(``python -m migration.worker`` running a ``postgres-copy-helper`` job) claim parts on the target.

The source's rows pass a CHECK that sleeps now and then (tests/postgres/test_resume.py), split into
many small parts, so a helper started before the leader has time to take its share.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from migration.errors import UsageError
from migration.postgres import CopyOptions, CopyResult, copy_database, verify_databases
from migration.postgres.copy.copylock import COPY_APPLICATION_NAME
from migration.progress import PlainProgress
from migration.worker import WORKER_COMMAND, PostgresCopyHelperJob, job_from_json, job_to_json
from tests.conftest import Database
from tests.helpers import Run, assert_one_line_error
from tests.postgres.test_resume import SECOND_SPLIT, SLOW_SOURCE

SPLIT = 256 * 1024
ROWS = {"big": 200000, "big2": 100000, "small": 10}


class _Watching(PlainProgress):
    """A progress sink that reads the target's ``_ferry`` schema as the data phase ends (before it is dropped)."""

    def __init__(self, target: Database) -> None:
        super().__init__(io.StringIO())
        self.target = target
        self.claims: dict[str, str | None] | None = None
        self.markers: list[str] = []
        self.tables: dict[str, bool] = {}

    def phase(self, name: str) -> None:
        super().phase(name)
        if name != "sequences":
            return
        for table in ("_ferry.part", "_ferry.part_claim", "_ferry.share"):
            self.tables[table] = bool(self.target.scalar("SELECT to_regclass(%s) IS NOT NULL", (table,)))
        self.markers = [str(r[0]) for r in self.target.execute("SELECT part_key FROM _ferry.part")]
        if self.tables["_ferry.part_claim"]:
            rows = self.target.execute("SELECT part_key, copied_by FROM _ferry.part_claim")
            self.claims = {str(key): None if by is None else str(by) for key, by in rows}


def _helper(target: Database, source: Database, status: Path, *, crash_at: str | None = None,
            wait_seconds: float = 120) -> subprocess.Popen[str]:  # fmt: skip
    """A helper worker process, its job on stdin; returns once it is waiting for the leader."""
    env = {k: v for k, v in os.environ.items() if k != "FERRY_CRASH_AT"}
    if crash_at:
        env["FERRY_CRASH_AT"] = crash_at
    job = PostgresCopyHelperJob(source.url, target.url, status, jobs=1, wait_seconds=wait_seconds)
    proc = subprocess.Popen(WORKER_COMMAND, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdin is not None
    proc.stdin.write(job_to_json(job))
    proc.stdin.close()
    proc.stdin = None  # written and closed: communicate() has nothing to send
    deadline = time.monotonic() + 60
    while not (status.exists() and json.loads(status.read_text())["phase"] == "waiting"):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the helper never started waiting"
        time.sleep(0.05)
    return proc


def _lead(source: Database, target: Database, progress: _Watching, *, resume: bool = False) -> CopyResult:
    options = CopyOptions(source.url, target.url, jobs=1, split_bytes=SPLIT, shared=True, resume=resume)
    return copy_database(options, progress)


def _assert_copied(source: Database, target: Database, result: CopyResult) -> None:
    report = verify_databases(source.url, target.url, mode="full")
    assert report.identical, report.differences
    assert {t.name: t.rows for t in result.tables} == {f"public.{name}": n for name, n in ROWS.items()}
    for name, n in ROWS.items():  # no part twice: the primary keys were built on exactly the source's rows
        assert target.scalar(f"SELECT count(*) FROM {name}") == n
    assert target.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = '_ferry'") == 0


def test_a_leader_and_a_helper_share_the_parts(source_db: Database, target_db: Database, tmp_path: Path) -> None:
    source_db.execute(SLOW_SOURCE + SECOND_SPLIT)
    helper = _helper(target_db, source_db, tmp_path / "helper.json")
    progress = _Watching(target_db)
    try:
        result = _lead(source_db, target_db, progress)
        _, stderr = helper.communicate(timeout=120)
    finally:
        helper.kill()
    assert helper.returncode == 0, stderr
    helped = int(stderr.strip().splitlines()[-1].split("postgres copy helper: ", 1)[1].split(" parts")[0])
    _assert_copied(source_db, target_db, result)

    # Every part planned was claimed and marked once, by the leader or by the helper.
    claims = progress.claims
    assert claims is not None and sorted(progress.markers) == sorted(claims)
    assert len(claims) == sum(t.parts for t in result.tables) > 20
    by = {copier: sum(1 for c in claims.values() if c == copier) for copier in set(claims.values())}
    assert set(by) == {COPY_APPLICATION_NAME, f"ferry copy {helper.pid}"}, by
    assert by[f"ferry copy {helper.pid}"] == helped > 0 and by[COPY_APPLICATION_NAME] > 0
    assert sum(t.helped_parts for t in result.tables) == helped
    status = json.loads((tmp_path / "helper.json").read_text())
    assert status["phase"] == "done" and status["parts"] == helped and status["rows"] > 0


def test_a_helper_killed_mid_part_leaves_it_to_the_leader(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    source_db.execute(SLOW_SOURCE + SECOND_SPLIT)
    # Killed in its third part: rows loaded and marker inserted, not committed, the claim's lock held.
    helper = _helper(target_db, source_db, tmp_path / "helper.json", crash_at="helper-part-loading:3")
    progress = _Watching(target_db)
    try:
        result = _lead(source_db, target_db, progress)
        _, stderr = helper.communicate(timeout=120)
    finally:
        helper.kill()
    assert helper.returncode == -9, stderr
    _assert_copied(source_db, target_db, result)
    claims = progress.claims
    assert claims is not None and sorted(progress.markers) == sorted(claims)
    # The two parts it committed stay its own; the third, and every other, the leader copied.
    copiers = list(claims.values())
    assert copiers.count(f"ferry copy {helper.pid}") == 2
    assert copiers.count(COPY_APPLICATION_NAME) == len(claims) - 2
    assert sum(t.helped_parts for t in result.tables) == 2


def test_a_helper_without_a_shared_copy_gives_up_after_its_wait(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    job = PostgresCopyHelperJob(source_db.url, target_db.url, tmp_path / "s.json", jobs=2, wait_seconds=1.5)
    started = time.monotonic()
    proc = subprocess.run(WORKER_COMMAND, input=job_to_json(job), capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started >= 1.5
    assert_one_line_error(Run(proc.returncode, proc.stdout, proc.stderr),
                          "target: no shared copy to help in this database after waiting 1.5 s")  # fmt: skip
    assert source_db.cluster.password not in proc.stderr
    assert json.loads((tmp_path / "s.json").read_text())["phase"] == "failed"


def test_a_helper_asked_to_stop_ends_its_part_and_leaves_the_rest(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    source_db.execute(SLOW_SOURCE + SECOND_SPLIT)
    status = tmp_path / "helper.json"
    helper = _helper(target_db, source_db, status)
    progress = _Watching(target_db)
    with ThreadPoolExecutor(1) as pool:
        leading = pool.submit(_lead, source_db, target_db, progress)
        deadline = time.monotonic() + 60
        while json.loads(status.read_text())["parts"] < 2:
            assert time.monotonic() < deadline and not leading.done(), "the helper copied nothing"
            time.sleep(0.02)
        helper.send_signal(signal.SIGTERM)  # the worker's first signal: end as it chooses
        try:
            _, stderr = helper.communicate(timeout=60)
        finally:
            helper.kill()
        result = leading.result(timeout=120)
    assert helper.returncode == 0, stderr
    helped = int(stderr.strip().splitlines()[-1].split("postgres copy helper: ", 1)[1].split(" parts")[0])
    _assert_copied(source_db, target_db, result)
    assert progress.claims is not None
    copiers = list(progress.claims.values())
    assert copiers.count(f"ferry copy {helper.pid}") == helped >= 2
    # It stopped well before the end: the leader copied the rest.
    assert copiers.count(COPY_APPLICATION_NAME) == len(copiers) - helped > helped


def test_an_unshared_copy_leaves_no_claims(source_db: Database, target_db: Database) -> None:
    source_db.execute(SLOW_SOURCE)
    progress = _Watching(target_db)
    result = copy_database(CopyOptions(source_db.url, target_db.url, jobs=2, split_bytes=SPLIT), progress)
    assert progress.tables == {"_ferry.part": True, "_ferry.part_claim": False, "_ferry.share": False}
    assert len(progress.markers) == sum(t.parts for t in result.tables) > 20
    assert all(t.helped_parts == 0 for t in result.tables)
    assert verify_databases(source_db.url, target_db.url, mode="full").identical


_LEADER = """
import sys
from migration.errors import UsageError
from migration.postgres import CopyOptions, copy_database
from migration.progress import make_progress
copy_database(CopyOptions(sys.argv[1], sys.argv[2], jobs=1, split_bytes=int(sys.argv[3]), shared=True),
              make_progress(quiet=True))
"""


def test_a_helper_of_a_dead_leader_stops_and_the_resume_finishes(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    source_db.execute(SLOW_SOURCE + SECOND_SPLIT)
    # A helper at work when its leader is killed stops: it would copy from a snapshot nobody continues.
    first = _helper(target_db, source_db, tmp_path / "first.json", wait_seconds=30)
    env = {**os.environ, "FERRY_CRASH_AT": "part-copied:10"}
    leader = subprocess.run([sys.executable, "-c", _LEADER, source_db.url, target_db.url, str(SPLIT)],
                            env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert leader.returncode == -9, leader.stderr
    try:
        _, stderr = first.communicate(timeout=60)
    finally:
        first.kill()
    assert_one_line_error(Run(first.returncode, "", stderr), "target: the copy into", "lost its leader", "--resume")
    assert json.loads((tmp_path / "first.json").read_text())["parts"] > 0
    done = target_db.scalar("SELECT count(*) FROM _ferry.part")
    assert isinstance(done, int) and done >= 10
    # One started after finds the dead leader's snapshot, waits for a resume's, and gives up.
    job = PostgresCopyHelperJob(source_db.url, target_db.url, tmp_path / "s.json", jobs=2, wait_seconds=2)
    proc = subprocess.run(WORKER_COMMAND, input=job_to_json(job), capture_output=True, text=True, timeout=60)
    assert_one_line_error(Run(proc.returncode, proc.stdout, proc.stderr),
                          "target: the copy into", "lost its leader", "--resume")  # fmt: skip
    assert target_db.scalar("SELECT count(*) FROM _ferry.part") == done  # it copied nothing

    # A helper started before the leader's resume waits for its new snapshot, then helps it.
    helper = _helper(target_db, source_db, tmp_path / "helper.json")
    progress = _Watching(target_db)
    try:
        result = _lead(source_db, target_db, progress, resume=True)
        _, stderr = helper.communicate(timeout=120)
    finally:
        helper.kill()
    assert helper.returncode == 0, stderr
    _assert_copied(source_db, target_db, result)
    assert result.resumed and progress.claims is not None
    copiers = set(progress.claims.values()) - {None}  # None: done before the resume, and kept
    assert copiers == {COPY_APPLICATION_NAME, f"ferry copy {helper.pid}"}, copiers
    assert sum(t.helped_parts for t in result.tables) > 0


BAD_HELPER_JOBS = [
    ({"jobs": 0}, "jobs must be a positive integer"),
    ({"wait_seconds": -1}, "wait_seconds must be a number of seconds"),
    ({"wait_seconds": True}, "wait_seconds must be a number of seconds"),
    ({"target_url": ""}, "target_url must be a non-empty string"),
]


@pytest.mark.parametrize(("change", "fragment"), BAD_HELPER_JOBS)
def test_a_bad_helper_job_is_refused(change: dict[str, object], fragment: str, tmp_path: Path) -> None:
    job = PostgresCopyHelperJob("postgresql://a/b", "postgresql://c/d", tmp_path / "s.json")
    assert job_from_json(job_to_json(job)) == job
    data = {**json.loads(job_to_json(job)), **change}
    with pytest.raises(UsageError, match=fragment):
        job_from_json(json.dumps(data))


def test_help_copy_reads_no_share_where_the_target_holds_none(target_db: Database) -> None:
    from migration.postgres.copy.share import read_share

    with psycopg.connect(target_db.url, autocommit=True) as conn:
        assert read_share(conn) is None
