"""``ferry pg preflight``: will ``ferry pg copy`` work between these two servers, and how long will it take?"""

from __future__ import annotations

import math

from migration.errors import FerryError
from migration.postgres.capture.inventory import schema_state
from migration.postgres.capture.status import is_fenced, log_stats
from migration.postgres.capture.tables import capture_tables
from migration.postgres.catalog import Conn, server_major
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import PgEndpoint, parse_url
from migration.postgres.copy.checks import available_extensions, installed_extensions
from migration.postgres.copy.state import load_state
from migration.postgres.copy.target import describe_contents
from migration.postgres.copy.tools import find_client_tools
from migration.postgres.footprint import CAPTURE_SCHEMA
from migration.postgres.identity import same_database
from migration.preflight import SAME_STORE_CHECK, Check, PreflightReport, Status

__all__ = ["Check", "PreflightReport", "preflight_database"]


# Measured by bench/pg_copy.py on a 2-core machine (bench/RESULTS.md): source bytes per
# second per job, index builds included. Deliberately rounded down.
BYTES_PER_SECOND_PER_JOB = 20 * 1024 * 1024


def _version(conn: Conn) -> str:
    row = conn.execute("SELECT current_setting('server_version')").fetchone()
    assert row is not None
    return str(row[0]).split(" ")[0]


def _source_checks(report: PreflightReport, conn: Conn, jobs: int) -> tuple[set[str], int]:
    extensions = installed_extensions(conn)
    user_tables = """FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', '_heroku')
          AND n.nspname NOT LIKE 'pg\\_%'"""
    unreadable = [
        str(r[0])
        for r in conn.execute(
            f"SELECT format('%I.%I', n.nspname, c.relname) {user_tables} AND NOT has_table_privilege(c.oid, 'SELECT') LIMIT 5"
        )
    ]
    if unreadable:
        report.add("source privileges", "fail", f"cannot SELECT from {', '.join(unreadable)}")
    else:
        report.add("source privileges", "ok", "every table is readable")
    row = conn.execute(f"SELECT count(*), coalesce(sum(pg_table_size(c.oid)), 0) {user_tables}").fetchone()
    assert row is not None
    report.tables, report.source_bytes = int(row[0]), int(row[1])
    largest = conn.execute(
        f"SELECT format('%I.%I', n.nspname, c.relname), pg_size_pretty(pg_total_relation_size(c.oid)) "
        f"{user_tables} AND c.relkind = 'r' ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 3"
    ).fetchall()
    db_size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
    assert db_size is not None
    report.add(
        "source size",
        "ok",
        f"database {db_size[0]}, {report.tables} tables; largest: " + ", ".join(f"{r[0]} {r[1]}" for r in largest),
    )
    no_pk = [
        str(r[0])
        for r in conn.execute(
            f"SELECT format('%I.%I', n.nspname, c.relname) {user_tables} AND c.relkind = 'r' AND NOT c.relispartition "
            "AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) ORDER BY 1"
        )
    ]
    if no_pk:
        shown = ", ".join(no_pk[:5]) + (f" and {len(no_pk) - 5} more" if len(no_pk) > 5 else "")
        report.add(
            "tables without a primary key",
            "warn",
            f"{len(no_pk)}: {shown} (copied with duplicates kept; change capture will need a key)",
        )
    else:
        report.add("tables without a primary key", "ok", "none")
    report.estimated_seconds = report.source_bytes / (BYTES_PER_SECOND_PER_JOB * max(1, min(jobs, report.tables)))
    _capture_checks(report, conn)
    return extensions, report.tables


def _capture_checks(report: PreflightReport, conn: Conn) -> None:
    """What change capture could not follow (copied inside the freeze), and capture left by an earlier run."""
    keyless = [t for t in capture_tables(conn, CAPTURE_SCHEMA) if not t.capturable]
    # One stream, inside the freeze: the whole table again, after its writes stopped.
    report.estimated_freeze_seconds = sum(t.bytes for t in keyless) / BYTES_PER_SECOND_PER_JOB
    if keyless:
        shown = ", ".join(f"{t.name} ({_size(t.bytes)})" for t in keyless[:5])
        report.add(
            "tables capture cannot follow",
            "warn",
            f"{len(keyless)} without a primary or non-null unique key: {shown}"
            + (f" and {len(keyless) - 5} more" if len(keyless) > 5 else "")
            + f"; with capture they are copied again inside the freeze, about {_duration(report.estimated_freeze_seconds)}",
        )
    else:
        report.add("tables capture cannot follow", "ok", "none: every table has a key")
    prepared = conn.execute(
        "SELECT count(*), min(gid) FROM pg_catalog.pg_prepared_xacts WHERE database = current_database()"
    ).fetchone()
    if prepared and prepared[0]:
        report.add(
            "prepared transactions",
            "warn",
            f"{prepared[0]} open (first gid {prepared[1]!r}): the fence refuses to go up while one is, since it "
            "commits whenever someone says COMMIT PREPARED",
        )
    state = schema_state(conn, CAPTURE_SCHEMA)
    if state == "absent":
        report.add("change capture", "ok", "not installed")
        return
    if state == "foreign":
        report.add(
            "change capture", "warn", f"schema {CAPTURE_SCHEMA} exists and is not ferry's: capture cannot use it"
        )
        return
    entries, log_bytes, _ = log_stats(conn, CAPTURE_SCHEMA)
    fence = " and its FENCE IS UP: every write to the source is refused" if is_fenced(conn, CAPTURE_SCHEMA) else ""
    report.add(
        "change capture",
        "warn",
        f"installed by an earlier run ({entries} log entries, {_size(log_bytes)}){fence}; "
        "`ferry pg capture remove` removes it, a run resumes with it",
    )


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def _target_checks(report: PreflightReport, conn: Conn, extensions: set[str], owner: str | None) -> None:
    missing = sorted(extensions - available_extensions(conn))
    if missing:
        report.add("extensions", "fail", f"the target server lacks extension(s) the source uses: {', '.join(missing)}")
    else:
        report.add("extensions", "ok", ", ".join(sorted(extensions)) or "none used")
    row = conn.execute(
        "SELECT has_database_privilege(current_database(), 'CREATE'), has_schema_privilege('public', 'CREATE'), "
        "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user), "
        "pg_is_in_recovery(), current_setting('transaction_read_only')"
    ).fetchone()
    assert row is not None
    if row[3] or row[4] == "on":
        report.add(
            "target privileges",
            "fail",
            "the target is read-only ("
            + ("a standby in recovery" if row[3] else "default_transaction_read_only")
            + ")",
        )
    elif not (row[0] and row[1]):
        report.add("target privileges", "fail", "the target user cannot create schemas and tables in this database")
    else:
        report.add("target privileges", "ok", "superuser" if row[2] else "may create schemas and tables")
    if owner:
        member = conn.execute(
            "SELECT pg_has_role(current_user, oid, 'MEMBER') FROM pg_roles WHERE rolname = %s", (owner,)
        ).fetchone()
        if member is None:
            report.add("owner role", "fail", f"role {owner} does not exist on the target")
        elif not member[0]:
            report.add("owner role", "fail", f"the target user is not a member of role {owner}")
        else:
            report.add("owner role", "ok", f"objects will belong to {owner}")
    if load_state(conn) is not None:
        report.add("target empty", "warn", "an unfinished ferry copy is here: ferry pg copy --resume finishes it")
        return
    contents = describe_contents(conn)
    if contents:
        report.add("target empty", "fail", f"not empty ({', '.join(contents)}); ferry pg copy --clean drops it all")
    else:
        report.add("target empty", "ok", "empty")


def preflight_database(source_url: str, target_url: str, *, jobs: int = 4, owner: str | None = None) -> PreflightReport:
    """Check that a copy from *source_url* to *target_url* would succeed.

    Connection failures are reported as failed checks rather than raised, so one run
    lists every problem on both sides. Malformed URLs still raise.
    """
    source = parse_url(source_url, "source")
    target = parse_url(target_url, "target")
    report = PreflightReport()
    extensions: set[str] = set()
    src_major: int | None = None
    over_tls = False
    try:
        with connect(source) as conn, pg_errors("source", source):
            src_major = server_major(conn)
            over_tls = bool(conn.pgconn.ssl_in_use)
            report.add("source server", "ok", f"PostgreSQL {_version(conn)} at {source.display}")
            extensions, _ = _source_checks(report, conn, jobs)
    except FerryError as exc:
        report.add("source server", "fail", str(exc))
    try:
        tools = find_client_tools(at_least=src_major, tls=over_tls)
        if src_major is not None and tools.major < src_major:
            report.add(
                "pg_dump", "fail", f"pg_dump {tools.major} at {tools.pg_dump} is older than the source ({src_major})"
            )
        else:
            report.add("pg_dump", "ok", f"pg_dump {tools.major} at {tools.pg_dump}")
    except FerryError as exc:
        report.add("pg_dump", "fail", str(exc))
    try:
        with connect(target) as conn, pg_errors("target", target):
            dst_major = server_major(conn)
            status: Status = "warn" if src_major is not None and dst_major < src_major else "ok"
            report.add(
                "target server",
                status,
                f"PostgreSQL {_version(conn)} at {target.display}"
                + (" (older than the source)" if status == "warn" else ""),
            )
            _target_checks(report, conn, extensions, owner)
    except FerryError as exc:
        report.add("target server", "fail", str(exc))
    _same_database_check(report, source, target)
    if report.source_bytes:
        report.add("estimate", "ok", f"about {_duration(report.estimated_seconds)} with {jobs} jobs")
    return report


def _same_database_check(report: PreflightReport, source: PgEndpoint, target: PgEndpoint) -> None:
    try:
        with connect(source) as src, connect(target) as dst, pg_errors("target", target):
            same = same_database(src, dst)
    except FerryError:
        return  # already reported as a failed server check above
    if same:
        report.add(SAME_STORE_CHECK, "fail", f"{target.display} is the source database itself")
    else:
        report.add(SAME_STORE_CHECK, "ok", "different databases")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, math.ceil(seconds))} s"
    if seconds < 5400:
        return f"{math.ceil(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
