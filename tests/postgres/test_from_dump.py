"""``ferry pg copy --from-dump``: a ``pg_dump -Fc`` archive (a file, or a URL) restored and verified.

The archive is the kitchen sink's, made by the newest pg_dump on the machine. Each restore is
compared twice, independently: ``ferry pg verify --mode full`` against the database it was dumped
from, and ``ferry pg verify --from-dump`` against the archive itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from migration.errors import FerryError
from migration.postgres import verify_databases
from migration.postgres.conninfo import parse_url
from migration.postgres.copy.tools import find_client_tools
from migration.postgres.dump import verify_dump
from migration.rehearse.pgcluster import Cluster
from tests.conftest import Database, _new_database
from tests.helpers import Run, assert_one_line_error, ferry


@dataclass(frozen=True)
class Dumped:
    """The kitchen sink, and its archive."""

    db: Database
    archive: Path


@pytest.fixture(scope="module")
def dumped(source_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Dumped:
    db = _new_database(source_cluster, "dumped")
    db.run_file("kitchen_sink.sql")
    tools = find_client_tools()
    archive = tmp_path_factory.mktemp("archives") / "kitchen_sink.dump"
    endpoint = parse_url(db.url, "source")
    tools.run([tools.pg_dump, "--format=custom", "--file", archive, endpoint.dbname], endpoint, "pg_dump")
    return Dumped(db, archive)


def _env(crash_at: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FERRY_CRASH_AT", "FERRY_SOURCE_URL")}
    return {**env, "FERRY_CRASH_AT": crash_at} if crash_at else env


def restore(source: str, target: Database, *extra: str, crash_at: str | None = None) -> Run:
    return ferry("pg", "copy", "--from-dump", source, "--target", target.url, "--jobs", "2", *extra,
                 env=_env(crash_at), timeout=120)  # fmt: skip


def assert_verified(
    dumped: Dumped, target: Database, archive: str | None = None, downloads: Path | None = None
) -> None:
    """Identical to the database dumped, by the live comparator (``ferry pg verify --mode full``); and to the
    archive, by its own (``ferry pg verify --from-dump``)."""
    live = verify_databases(dumped.db.url, target.url, mode="full")
    assert live.identical, live.differences[:5]
    assert (live.tables_checked, live.rows_checked) == (19, 32294)
    against = verify_dump(archive or str(dumped.archive), target.url, download_dir=downloads)
    assert against.identical, against.differences[:5]
    assert (against.tables_checked, against.rows_checked) == (17, 29294) and against.objects_checked > 50


def _has_state(db: Database) -> bool:
    return bool(db.scalar("SELECT to_regclass('_ferry.run') IS NOT NULL"))


def test_an_archive_restores_identical_to_the_database_it_was_dumped_from(dumped: Dumped, target_db: Database) -> None:
    run = restore(str(dumped.archive), target_db, "--json", "--verify")
    assert run.code == 0, run.output
    summary = run.json
    tables = {t["name"]: t for t in summary["tables"]}
    assert tables["sales.orders"]["rows"] == 20000 and tables["sales.orders"]["index_seconds"] > 0
    assert summary["large_objects"] == 3 and summary["sequences"] == 4 and summary["materialized_views"] == 2
    assert summary["consistent"] and not summary["resumed"] and summary["verify"]["identical"]
    checked = summary["verify"]["checked"]
    assert (checked["tables"], checked["rows"]) == (17, 29294) and checked["objects"] > 50
    live = ferry("pg", "verify", "--source", dumped.db.url, "--target", target_db.url, "--mode", "full", env=_env())
    assert live.code == 0 and live.stdout.startswith("identical: 19 tables, 32294 rows"), live.output
    t = target_db
    assert not _has_state(t)
    # loaded frozen (truncated in the load's transaction), the trigger created after the rows
    assert t.scalar("SELECT count(*) FROM audit_log") == 1
    assert t.scalar("SELECT nextval('sales.orders_id_seq')") == 20001
    assert t.scalar("SELECT t FROM odd_values WHERE id = 1") == "tab\there\nnewline\\backslash"
    assert t.scalar("SELECT count(*) FROM no_columns") == 2
    # the target is not empty now: a second restore is refused, as a copy would be
    again = restore(str(dumped.archive), target_db)
    assert_one_line_error(again, "target: database", "is not empty")
    # a row lost on the target, an index dropped: the archive's verify (the CLI's report) says which
    t.execute("DELETE FROM sales.orders WHERE id = 7; DROP INDEX sales.orders_customer_idx")
    differs = ferry("pg", "verify", "--from-dump", str(dumped.archive), "--target", t.url, env=_env())
    assert differs.code == 1, differs.output
    assert re.search(r"row count\s*│\s*sales\.orders\s*│\s*20000\s*│\s*19999", differs.stdout), differs.stdout
    assert re.search(r"index missing\s*│\s*sales\.orders_customer_idx", differs.stdout), differs.stdout
    assert differs.stdout.strip().splitlines()[-1].startswith("DIFFERENT: 17 tables, 29294 rows")


@pytest.mark.parametrize("crash_at", ["part-loading:2", "part-copied:3", "index-built:2"])
def test_a_restore_killed_midway_resumes_and_verifies(crash_at: str, dumped: Dumped, target_db: Database) -> None:
    killed = restore(str(dumped.archive), target_db, crash_at=crash_at)
    assert killed.code == -9, killed.output
    assert _has_state(target_db)
    done = int(str(target_db.scalar("SELECT count(*) FROM _ferry.part")))
    resumed = restore(str(dumped.archive), target_db, "--resume", "--json")
    assert resumed.code == 0, resumed.output
    assert resumed.json["resumed"] and resumed.json["consistent"]
    assert sum(t["resumed_parts"] for t in resumed.json["tables"]) >= done - 1  # the objects' part is not a table
    assert done > 0 or crash_at == "part-loading:2"
    assert_verified(dumped, target_db)


def test_a_table_holding_rows_without_its_marker_is_loaded_again_whole(dumped: Dumped, target_db: Database) -> None:
    """Only a kill inside the load's transaction could leave rows without a marker, and that rolls back; were
    any there, the load truncates them in the transaction that marks it."""
    killed = restore(str(dumped.archive), target_db, crash_at="pre-data-committed")
    assert killed.code == -9 and _has_state(target_db)
    target_db.execute("INSERT INTO odd_values (id) VALUES (99)")
    resumed = restore(str(dumped.archive), target_db, "--resume")
    assert resumed.code == 0, resumed.output
    assert target_db.scalar("SELECT count(*) FROM odd_values WHERE id = 99") == 0
    assert_verified(dumped, target_db)


def test_resuming_from_another_archive_is_refused(dumped: Dumped, target_db: Database, tmp_path: Path) -> None:
    killed = restore(str(dumped.archive), target_db, crash_at="part-copied:2")
    assert killed.code == -9
    other_db = _new_database(dumped.db.cluster, "other")
    other_db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
    tools = find_client_tools()
    endpoint = parse_url(other_db.url, "source")
    other = tmp_path / "other.dump"
    tools.run([tools.pg_dump, "--format=custom", "--file", other, endpoint.dbname], endpoint, "pg_dump")
    refused = restore(str(other), target_db, "--resume")
    assert_one_line_error(refused, "target: the unfinished copy here came from archive of dumped_")
    assert _has_state(target_db)


def test_what_does_not_apply_to_an_archive_is_refused(dumped: Dumped, target_db: Database) -> None:
    both = restore(str(dumped.archive), target_db, "--source", dumped.db.url)
    assert_one_line_error(both, "--source and --from-dump name two sources")
    chosen = restore(str(dumped.archive), target_db, "-t", "customers", "--follow")
    assert_one_line_error(chosen, "--from-dump restores the whole archive as it is: leave out -t, --follow")
    _assert_untouched(target_db)


# --- Bad input: one line naming the source, and nothing written on the target ---------------------


def _assert_untouched(target: Database) -> None:
    assert not _has_state(target)
    assert (
        target.scalar(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"
        )
        == 0
    )


def _bad_input(kind: str, dumped: Dumped, where: Path, server: ArchiveServer) -> tuple[str, str]:
    """The ``--from-dump`` argument, and what the error line says."""
    data = dumped.archive.read_bytes()
    if kind == "missing":
        return str(where / "nope.dump"), "no such file"
    if kind == "plain":
        (where / "plain.sql").write_text("--\n-- PostgreSQL database dump\n--\n\nCREATE TABLE t (id int);\n")
        return str(where / "plain.sql"), "plain SQL dump"
    if kind == "truncated":
        (where / "cut.dump").write_bytes(data[: len(data) * 2 // 3])
        return str(where / "cut.dump"), "truncated"
    if kind == "truncated-toc":
        (where / "cut.dump").write_bytes(data[:3000])
        return str(where / "cut.dump"), "its table of contents ends early"
    if kind == "directory":
        tools = find_client_tools()
        endpoint = parse_url(dumped.db.url, "source")
        tools.run([tools.pg_dump, "--format=directory", "--file", where / "dir", endpoint.dbname], endpoint, "pg_dump")
        return str(where / "dir"), "directory-format dump"
    assert kind == "404"
    return f"{server.url}/missing.dump?X-Amz-Signature=s3cr3t", "HTTP 404"


@pytest.mark.parametrize("kind", ["missing", "plain", "truncated", "truncated-toc", "directory", "404"])
def test_bad_input_is_one_line_naming_the_source(
    kind: str, dumped: Dumped, target_db: Database, tmp_path: Path, archive_server: ArchiveServer
) -> None:
    source, says = _bad_input(kind, dumped, tmp_path, archive_server)
    run = restore(source, target_db, "--download-dir", str(tmp_path / "downloads"))
    assert_one_line_error(run, "source: ", says)
    assert "s3cr3t" not in run.output  # a signed URL's signature is never shown
    _assert_untouched(target_db)
    with pytest.raises(FerryError) as refused:
        verify_dump(source, target_db.url, download_dir=tmp_path / "downloads")
    assert str(refused.value).startswith("source: ") and says in str(refused.value)


# --- A URL source --------------------------------------------------------------------------------


@dataclass
class ArchiveServer:
    """A tiny HTTP server of archives: ``ETag``, ``Range`` and ``If-Range`` as S3 answers them; it can cut
    the next full download short, as a lost connection does."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    ranges: list[str] = field(default_factory=list)
    cut_next: bool = False


@pytest.fixture
def archive_server() -> Iterator[ArchiveServer]:
    state = ArchiveServer("")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.files.get(self.path.split("?")[0])
            if body is None:
                self.send_error(404, "File not found")
                return
            etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
            wanted = self.headers.get("Range")
            state.ranges.append(wanted or "")
            start, end = 0, len(body) - 1
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", wanted or "")
            if match and self.headers.get("If-Range") in (None, etag):
                start, end = int(match[1]), int(match[2]) if match[2] else len(body) - 1
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            data = body[start : end + 1]
            if state.cut_next and not match:
                state.cut_next = False
                self.wfile.write(data[: len(data) // 2])
                self.close_connection = True
                return
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_a_url_is_downloaded_resumably_then_restored(
    dumped: Dumped, target_db: Database, tmp_path: Path, archive_server: ArchiveServer
) -> None:
    archive_server.files["/backups/b042.dump"] = dumped.archive.read_bytes()
    url = f"{archive_server.url}/backups/b042.dump?X-Amz-Expires=3600&X-Amz-Signature=s3cr3t"
    downloads = tmp_path / "downloads"
    archive_server.cut_next = True  # the connection is lost halfway
    cut = restore(url, target_db, "--download-dir", str(downloads))
    assert_one_line_error(cut, "source: cannot download http://127.0.0.1:", "/backups/b042.dump")
    assert "s3cr3t" not in cut.output
    (part,) = downloads.glob("*.part")
    have = part.stat().st_size
    assert 0 < have < len(archive_server.files["/backups/b042.dump"])
    _assert_untouched(target_db)
    run = restore(url, target_db, "--download-dir", str(downloads), "--json")
    assert run.code == 0, run.output
    assert archive_server.ranges[-1] == f"bytes={have}-"  # continued where it stopped
    assert run.json["archive"]["downloaded"] and "s3cr3t" not in run.output
    (kept,) = downloads.glob("*.dump")
    assert kept.read_bytes() == dumped.archive.read_bytes()
    # verifying from the URL again uses the file: the server is asked one byte, to tell it is unchanged
    assert_verified(dumped, target_db, url.replace("s3cr3t", "an0ther"), downloads)
    assert archive_server.ranges[-1] == "bytes=0-0"


def test_the_rehearsals_shop_restored_from_its_archive_verifies_identical(
    source_cluster: Cluster, target_db: Database, tmp_path: Path
) -> None:
    """The Done-when's own case: the rehearsal's shop, dumped with ``pg_dump -Fc``, restored and compared."""
    from migration.rehearse.dataset import fill_postgres

    shop = _new_database(source_cluster, "shop_dumped")
    assert fill_postgres(shop.url, 400) > 0
    tools = find_client_tools()
    archive = tmp_path / "shop.dump"
    endpoint = parse_url(shop.url, "source")
    tools.run([tools.pg_dump, "--format=custom", "--file", archive, endpoint.dbname], endpoint, "pg_dump")
    run = restore(str(archive), target_db, "--json", "--verify")
    assert run.code == 0, run.output
    live = verify_databases(shop.url, target_db.url, mode="full")  # the comparator that never saw the archive
    assert live.identical and live.rows_checked > 5000, live.differences[:5]
    assert run.json["verify"]["identical"] and run.json["verify"]["checked"]["rows"] == live.rows_checked
