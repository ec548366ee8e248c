"""What managed platforms add to a database, and how the copy treats it.

Heroku: the ``_heroku`` schema and its event triggers belong to the platform and stay
behind; extensions live in ``heroku_ext``, which the database's ``search_path`` names.
RDS and other managed targets: ``COMMENT ON EXTENSION`` needs a superuser.
"""

from __future__ import annotations

import psycopg

from migration.postgres.capture.sql import DEFAULT_SCHEMA as CAPTURE_SCHEMA
from migration.postgres.capture.sql import TRIGGERS as CAPTURE_TRIGGERS
from migration.postgres.catalog import Conn
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.schema import DumpFilters, TocEntry
from migration.progress import ProgressSink

__all__ = ["PLATFORM_SCHEMAS", "copy_database_settings", "platform_event_triggers", "platform_filters", "skip_entry"]

#: Schemas never copied: the platform's, and ferry's own change capture on the source.
PLATFORM_SCHEMAS = ("_heroku", CAPTURE_SCHEMA)


def platform_filters(filters: DumpFilters) -> DumpFilters:
    return DumpFilters(
        filters.schemas, tuple(filters.exclude_schemas) + PLATFORM_SCHEMAS, filters.tables, filters.exclude_tables
    )


def skip_entry(entry: TocEntry, platform_event_triggers: set[int]) -> bool:
    # RDS and other managed targets refuse COMMENT ON EXTENSION unless superuser.
    if entry.desc == "COMMENT" and entry.rest.startswith("- EXTENSION "):
        return True
    if entry.desc == "TRIGGER" and entry.rest.split(" ")[-2:-1] and entry.rest.split(" ")[-2] in CAPTURE_TRIGGERS:
        return True  # change capture's triggers stay on the source
    return entry.desc == "EVENT TRIGGER" and entry.oid in platform_event_triggers


def platform_event_triggers(holder: Conn) -> set[int]:
    rows = holder.execute(
        "SELECT e.oid FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY(%s)",
        (list(PLATFORM_SCHEMAS),),
    ).fetchall()
    return {int(r[0]) for r in rows}


def copy_database_settings(holder: Conn, control: Conn, target: PgEndpoint, progress: ProgressSink) -> None:
    """Carry the database-level search_path (Heroku adds ``heroku_ext`` to it)."""
    row = holder.execute(
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE d.datname = current_database() AND s.setrole = 0"
    ).fetchone()
    for setting in row[0] if row and row[0] else []:
        name, _, value = str(setting).partition("=")
        if name != "search_path":
            continue
        try:
            control.execute(
                f"ALTER DATABASE {psycopg.sql.Identifier(target.dbname).as_string()} SET search_path = {value}"
            )
        except psycopg.Error as exc:
            progress.message(f"warning: could not set search_path on the target database: {exc}")
