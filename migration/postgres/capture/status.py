"""``ferry pg capture status``: what is captured, what is not, and how big the log has grown."""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from migration.postgres.capture.install import CaptureSettings
from migration.postgres.capture.inventory import capture_problems, recorded_tables, schema_state
from migration.postgres.capture.tables import capture_tables
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import parse_url
from migration.postgres.footprint import CAPTURE_FENCE, CAPTURE_LOG, ROW_FUNCTION_PREFIX, in_capture

__all__ = ["CaptureStatus", "capture_status", "is_fenced", "log_stats"]


@dataclass
class CaptureStatus:
    """The source's capture, as it stands.

    :param captured: tables whose changes are logged: capture's row trigger is on them (read from the
        catalog, not from capture's own list).
    :param uncaptured: tables whose changes are not logged: without a key, created since install, or
        whose trigger is gone.
    :param problems: what no longer holds since install (a trigger disabled or gone, a table rebuilt,
        renamed or created): each is a way writes escape capture, and the follow and the fence refuse.
    :param log_entries: changes logged and not yet cleared.
    """

    schema: str
    installed: bool
    captured: list[str] = field(default_factory=list)
    uncaptured: list[str] = field(default_factory=list)
    log_entries: int = 0
    log_bytes: int = 0
    oldest_seconds: float | None = None
    #: The fence is up: every write to a table of the source is refused.
    fenced: bool = False
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "schema": self.schema,
            "installed": self.installed,
            "captured": self.captured,
            "uncaptured": self.uncaptured,
            "log_entries": self.log_entries,
            "log_bytes": self.log_bytes,
            "oldest_seconds": None if self.oldest_seconds is None else round(self.oldest_seconds, 3),
            "fenced": self.fenced,
            "problems": self.problems,
        }


def capture_status(source_url: str, settings: CaptureSettings | None = None) -> CaptureStatus:
    settings = settings or CaptureSettings()
    source = parse_url(source_url, "source")
    with connect(source, autocommit=True) as conn, pg_errors("source", source):
        status = CaptureStatus(settings.schema, schema_state(conn, settings.schema) == "ours")
        tables = capture_tables(conn, settings.schema)
        if not status.installed:
            status.uncaptured = sorted(t.name for t in tables)
            return status
        keyed = {r.oid for r in recorded_tables(conn, settings.schema) if r.key}
        logging = {int(r[0]) for r in conn.execute(_LOGGING, (settings.schema, _ROW_FUNCTIONS))}
        status.captured = sorted(t.name for t in tables if t.oid in keyed and t.oid in logging)
        status.uncaptured = sorted({t.name for t in tables} - set(status.captured))
        status.problems = capture_problems(conn, settings.schema, tables)
        status.log_entries, status.log_bytes, status.oldest_seconds = log_stats(conn, settings.schema)
        status.fenced = is_fenced(conn, settings.schema)
    return status


# Tables carrying capture's row trigger, enabled: their changes reach the log.
_LOGGING = """
SELECT t.tgrelid FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
 WHERE p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %s)
   AND p.proname LIKE %s AND t.tgenabled <> 'D'
"""
_ROW_FUNCTIONS = ROW_FUNCTION_PREFIX.replace("_", "\\_") + "%"


def is_fenced(conn: Conn, schema: str) -> bool:
    """Whether the fence row of an installed capture is there (its functions refuse writes)."""
    row = conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(in_capture(schema, CAPTURE_FENCE))).fetchone()
    return bool(row and row[0])


def log_stats(conn: Conn, schema: str) -> tuple[int, int, float | None]:
    """The change log's entries, its bytes on the source's disk, and its oldest entry's age (``None``: empty)."""
    log = in_capture(schema, CAPTURE_LOG)
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), pg_catalog.pg_total_relation_size({name}::regclass), "
            "extract(epoch FROM pg_catalog.clock_timestamp() - min(at)) FROM {log}"
        ).format(log=log, name=sql.Literal(log.as_string())),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), None if row[2] is None else float(row[2])
