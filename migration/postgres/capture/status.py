"""``ferry pg capture status``: what is captured, what is not, and how big the log has grown."""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from migration.postgres.capture.install import CaptureSettings, schema_state
from migration.postgres.capture.tables import capture_tables
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import parse_url

__all__ = ["CaptureStatus", "capture_status", "is_fenced", "log_stats"]


@dataclass
class CaptureStatus:
    """The source's capture, as it stands.

    :param uncaptured: tables with no triggers of ours: without a key, or created since install.
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
        }


def capture_status(source_url: str, settings: CaptureSettings | None = None) -> CaptureStatus:
    settings = settings or CaptureSettings()
    source = parse_url(source_url, "source")
    with connect(source, autocommit=True) as conn, pg_errors("source", source):
        status = CaptureStatus(settings.schema, schema_state(conn, settings.schema) == "ours")
        tables = {t.name for t in capture_tables(conn, settings.schema)}
        if not status.installed:
            status.uncaptured = sorted(tables)
            return status
        s = sql.Identifier(settings.schema)
        status.captured = sorted(
            str(r[0])
            for r in conn.execute(
                sql.SQL("SELECT name FROM {}.captured WHERE pg_catalog.to_regclass(name) = rel").format(s)
            )
        )
        status.uncaptured = sorted(tables - set(status.captured))
        status.log_entries, status.log_bytes, status.oldest_seconds = log_stats(conn, settings.schema)
        status.fenced = is_fenced(conn, settings.schema)
    return status


def is_fenced(conn: Conn, schema: str) -> bool:
    """Whether the fence row of an installed capture is there (its functions refuse writes)."""
    row = conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {}.fence)").format(sql.Identifier(schema))).fetchone()
    return bool(row and row[0])


def log_stats(conn: Conn, schema: str) -> tuple[int, int, float | None]:
    """The change log's entries, its bytes on the source's disk, and its oldest entry's age (``None``: empty)."""
    s = sql.Identifier(schema)
    row = conn.execute(
        sql.SQL(
            "SELECT count(*), pg_catalog.pg_total_relation_size({log}::regclass), "
            "extract(epoch FROM pg_catalog.clock_timestamp() - min(at)) FROM {s}.log"
        ).format(s=s, log=sql.Literal(f"{s.as_string()}.log")),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), None if row[2] is None else float(row[2])
