"""``ferry pg copy --from-dump`` / ``ferry pg verify --from-dump`` on the archives a hostile review made:
partitions loaded through their root, comments, a domain's NOT VALID check, a sequence gone from the
target, an archive pg_dump wrote to its redirected stdout, an archive of an empty database.

Each test restores a small archive made by the newest pg_dump on the machine into a fresh target and
checks the result with its own queries (row counts, comments, exit codes), then, where it says so, with
ferry's verify.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from migration.postgres.conninfo import parse_url
from migration.postgres.copy.tools import find_client_tools
from tests.conftest import Database
from tests.helpers import Run, ferry


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("FERRY_CRASH_AT", "FERRY_SOURCE_URL")}


def _dump(db: Database, archive: Path, *extra: str) -> Path:
    tools = find_client_tools()
    endpoint = parse_url(db.url, "source")
    tools.run([tools.pg_dump, "--format=custom", *extra, "--file", archive, endpoint.dbname], endpoint, "pg_dump")
    return archive


def _restore(archive: Path, target: Database, *extra: str, crash_at: str | None = None) -> Run:
    env = {**_env(), "FERRY_CRASH_AT": crash_at} if crash_at else _env()
    return ferry("pg", "copy", "--from-dump", str(archive), "--target", target.url, "--jobs", "2", *extra,
                 env=env, timeout=120)  # fmt: skip


def _verify(archive: Path, target: Database) -> Run:
    return ferry("pg", "verify", "--from-dump", str(archive), "--target", target.url, env=_env(), timeout=120)


def _counts(db: Database, *tables: str) -> dict[str, int]:
    return {t: int(str(db.scalar(f"SELECT count(*) FROM ONLY {t}"))) for t in tables}


_HASH_ON_ENUM = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE hmood (id int, m mood) PARTITION BY HASH (m);
CREATE TABLE hmood_0 PARTITION OF hmood FOR VALUES WITH (MODULUS 3, REMAINDER 0);
CREATE TABLE hmood_1 PARTITION OF hmood FOR VALUES WITH (MODULUS 3, REMAINDER 1);
CREATE TABLE hmood_2 PARTITION OF hmood FOR VALUES WITH (MODULUS 3, REMAINDER 2);
INSERT INTO hmood SELECT g, (ARRAY['sad', 'ok', 'happy']::mood[])[1 + g % 3] FROM generate_series(1, 300) g;
"""
_PARTS = ("public.hmood_0", "public.hmood_1", "public.hmood_2")


def test_hash_partitions_on_an_enum_are_restored_through_their_root(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    """pg_dump loads a hash partition on an enum through its root (``COPY public.hmood``) without being asked:
    each entry is a part of its own (its dump id in its key), loaded without TRUNCATE, reported with its rows.
    The target's enum has other oids, so its rows may land in other partitions: the root holds them all, and
    the verify counts them over the root's tree."""
    source_db.execute(_HASH_ON_ENUM)
    archive = _dump(source_db, tmp_path / "hmood.dump")
    run = _restore(archive, target_db, "--json")
    assert run.code == 0, run.output
    assert target_db.scalar("SELECT count(*) FROM public.hmood") == 300
    assert sum(_counts(target_db, *_PARTS).values()) == 300
    loaded = {t["name"]: t["rows"] for t in run.json["tables"]}
    assert loaded == _counts(source_db, *_PARTS), loaded  # each entry's rows: its partition's on the source
    verified = _verify(archive, target_db)
    assert verified.code == 0, verified.output


_RANGE = (
    "CREATE TABLE r (id int) PARTITION BY RANGE (id);"
    "CREATE TABLE r_1 PARTITION OF r FOR VALUES FROM (0) TO (100);"
    "CREATE TABLE r_2 PARTITION OF r FOR VALUES FROM (100) TO (200);"
    "CREATE TABLE r_3 PARTITION OF r FOR VALUES FROM (200) TO (300);"
    "INSERT INTO r SELECT generate_series(0, 299)"
)
_THIRDS = {"public.r_1": 100, "public.r_2": 100, "public.r_3": 100}


def test_partitions_loaded_through_their_root_are_all_restored(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    """``--load-via-partition-root``: every partition's entry is loaded (one marker each, not one for all)."""
    source_db.execute(_RANGE)
    archive = _dump(source_db, tmp_path / "lvpr.dump", "--load-via-partition-root")
    run = _restore(archive, target_db)
    assert run.code == 0, run.output
    assert "loaded public.r_2: 100 rows" in run.output, run.output
    assert _counts(target_db, "public.r_1", "public.r_2", "public.r_3") == _THIRDS
    assert _verify(archive, target_db).code == 0


@pytest.mark.parametrize("crash_at", ["part-loading:2", "part-copied:2"])
def test_a_resume_after_a_kill_amid_partition_root_loads_loses_and_doubles_no_rows(
    crash_at: str, source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    """Killed while loading (or just after) an entry through the root: each entry's rows and marker commit
    together, so the resume loads exactly the entries not marked, none twice."""
    source_db.execute(_RANGE)
    archive = _dump(source_db, tmp_path / "lvpr.dump", "--load-via-partition-root")
    killed = _restore(archive, target_db, crash_at=crash_at)
    assert killed.code == -9, killed.output
    resumed = _restore(archive, target_db, "--resume")
    assert resumed.code == 0, resumed.output
    assert _counts(target_db, "public.r_1", "public.r_2", "public.r_3") == _THIRDS


def test_resume_with_nothing_to_resume_in_an_empty_target_restores_from_the_beginning(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    """Killed before the schema and the resume state committed, the target is empty: ``--resume`` restores it
    all (as the runbook's resume does), rather than "no unfinished copy to resume"."""
    source_db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)")
    archive = _dump(source_db, tmp_path / "t.dump")
    killed = _restore(archive, target_db, crash_at="pre-data")
    assert killed.code == -9, killed.output
    resumed = _restore(archive, target_db, "--resume")
    assert resumed.code == 0, resumed.output
    assert target_db.scalar("SELECT count(*) FROM t") == 10


def test_comments_are_restored_and_verified(source_db: Database, target_db: Database, tmp_path: Path) -> None:
    """COMMENT entries are in section "none" of the archive: each is applied in the section it stands in (after
    its object, as pg_restore places it): on a table or a column with pre-data, on an index with post-data.
    The verify finds a comment gone."""
    source_db.execute(
        "CREATE TABLE t (id int PRIMARY KEY, name text); INSERT INTO t VALUES (1, 'a');"
        "CREATE INDEX t_name ON t (name);"
        "COMMENT ON TABLE t IS 'the table'; COMMENT ON COLUMN t.name IS 'its name';"
        "COMMENT ON INDEX t_pkey IS 'the key'; COMMENT ON INDEX t_name IS 'by name';"
        "COMMENT ON CONSTRAINT t_pkey ON t IS 'the constraint'"
    )
    archive = _dump(source_db, tmp_path / "comments.dump")
    run = _restore(archive, target_db)
    assert run.code == 0, run.output
    assert target_db.scalar("SELECT obj_description('public.t'::regclass, 'pg_class')") == "the table"
    assert target_db.scalar("SELECT col_description('public.t'::regclass, 2)") == "its name"
    assert target_db.scalar("SELECT obj_description('public.t_pkey'::regclass, 'pg_class')") == "the key"
    assert target_db.scalar("SELECT obj_description('public.t_name'::regclass, 'pg_class')") == "by name"
    assert (
        target_db.scalar("SELECT obj_description(oid, 'pg_constraint') FROM pg_constraint WHERE conname = 't_pkey'")
        == "the constraint"
    )
    assert _verify(archive, target_db).code == 0
    target_db.execute("COMMENT ON COLUMN t.name IS NULL")
    differs = _verify(archive, target_db)
    assert differs.code == 1, differs.output
    assert "COLUMN t.name" in differs.stdout, differs.output


def test_verify_passes_a_restored_not_valid_domain_check(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    """A domain's NOT VALID check is its own "CHECK CONSTRAINT" entry, tagged "<domain> <constraint>": the verify
    looks for it among the domains' constraints (``pg_constraint.contypid``) too."""
    source_db.execute(
        "CREATE DOMAIN later AS int; ALTER DOMAIN later ADD CONSTRAINT later_pos CHECK (VALUE > 0) NOT VALID;"
        "CREATE TABLE t (id int PRIMARY KEY, v later); INSERT INTO t VALUES (1, 1)"
    )
    archive = _dump(source_db, tmp_path / "domain.dump")
    assert _restore(archive, target_db).code == 0
    assert target_db.scalar("SELECT count(*) FROM pg_constraint WHERE conname = 'later_pos'") == 1
    run = _verify(archive, target_db)
    assert run.code == 0, run.output


def test_verify_reports_a_missing_sequence_as_a_difference(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    """A sequence the archive sets but the target lacks is a difference (exit 1, in the report); the sequence's
    name, taken from the archive, is a parameter, never SQL (a name made to inject SQL is just not found)."""
    source_db.execute(
        "CREATE SEQUENCE s; SELECT setval('s', 42); CREATE TABLE t (id int); INSERT INTO t VALUES (1);"
        """CREATE SEQUENCE "x"";DROP TABLE t;--"; SELECT setval('"x"";DROP TABLE t;--"', 7)"""
    )
    archive = _dump(source_db, tmp_path / "seq.dump")
    assert _restore(archive, target_db).code == 0
    target_db.execute('DROP SEQUENCE s; DROP SEQUENCE "x"";DROP TABLE t;--"')
    run = _verify(archive, target_db)
    assert run.code == 1, run.output
    assert "public.s" in run.stdout, run.output
    assert target_db.scalar("SELECT to_regclass('public.t') IS NOT NULL")


def test_an_archive_pg_dump_wrote_to_its_redirected_stdout_is_accepted(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    """``pg_dump -Fc db > file``: pg_dump 18 writes its table of contents again after the data blocks when its
    stdout is a file (pg_restore does not read that copy): the walk over the blocks stops at the last entry's."""
    source_db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)")
    tools = find_client_tools()
    archive = tmp_path / "redirected.dump"
    env = {**os.environ, "PGPASSWORD": source_db.cluster.password}
    args = [str(tools.pg_dump), "-Fc", "-h", "127.0.0.1", "-p", str(source_db.cluster.port), "-U",
            source_db.cluster.superuser, source_db.name]  # fmt: skip
    with open(archive, "wb") as out:
        subprocess.run(args, stdout=out, env=env, check=True)
    listed = subprocess.run([str(tools.pg_restore), "--list", str(archive)], capture_output=True, check=False)
    assert listed.returncode == 0  # a valid archive to pg_restore
    run = _restore(archive, target_db)
    assert run.code == 0, run.output
    assert target_db.scalar("SELECT count(*) FROM t") == 10


def test_an_archive_of_an_empty_database_restores_and_verifies(
    source_db: Database, target_db: Database, tmp_path: Path
) -> None:
    """pg_restore lists no entry in it and restores it (there is nothing to do): so does ferry, and its verify."""
    archive = _dump(source_db, tmp_path / "empty.dump")
    run = _restore(archive, target_db)
    assert run.code == 0, run.output
    verified = _verify(archive, target_db)
    assert verified.code == 0, verified.output
