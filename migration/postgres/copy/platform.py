"""What managed platforms add to a database, and how the copy treats it.

Heroku: the ``_heroku`` schema and its event triggers belong to the platform and stay
behind; extensions live in ``heroku_ext``, which the database's ``search_path`` names.
ferry's own change capture stays behind too: every schema carrying capture's mark, whatever it
is called, and every trigger whose function lives in one (found by identity, not by name).
RDS and other managed targets: ``COMMENT ON EXTENSION`` needs a superuser.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from migration.postgres.catalog import Conn
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.copy.schema import DumpFilters, TocEntry
from migration.postgres.footprint import FERRY_SCHEMAS, capture_schemas, our_trigger_oids
from migration.progress import ProgressSink

__all__ = ["PLATFORM_SCHEMAS", "LeftBehind", "copy_database_settings", "left_behind", "platform_filters", "skip_entry"]

#: The platform's schemas, never copied.
PLATFORM_SCHEMAS = ("_heroku",)


@dataclass(frozen=True)
class LeftBehind:
    """What stays on the source: schemas (the platform's, ferry's own, every change capture's), and the oids of the
    triggers and event triggers of theirs that sit on the app's tables or the database."""

    schemas: tuple[str, ...] = PLATFORM_SCHEMAS
    oids: frozenset[int] = frozenset()


def left_behind(holder: Conn) -> LeftBehind:
    """Read in the copy's snapshot (*holder*)."""
    captures = capture_schemas(holder)
    rows = holder.execute(
        "SELECT e.oid FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = ANY(%s)",
        (list(PLATFORM_SCHEMAS),),
    ).fetchall()
    oids = {int(r[0]) for r in rows} | our_trigger_oids(holder)
    # ferry's own records on a database that was once a follow's target (an old database followed back
    # into, a target copied again) are no data of the app's: a copy of them would confuse the next follow.
    return LeftBehind((*PLATFORM_SCHEMAS, *FERRY_SCHEMAS, *captures), frozenset(oids))


def _exact(schema: str) -> str:
    """A pg_dump pattern matching exactly *schema*."""
    return '"' + schema.replace('"', '""') + '"'


def platform_filters(filters: DumpFilters, behind: LeftBehind) -> DumpFilters:
    excluded = tuple(filters.exclude_schemas) + tuple(_exact(s) for s in behind.schemas)
    return DumpFilters(filters.schemas, excluded, filters.tables, filters.exclude_tables)


def skip_entry(entry: TocEntry, behind: LeftBehind) -> bool:
    # RDS and other managed targets refuse COMMENT ON EXTENSION unless superuser.
    if entry.desc == "COMMENT" and entry.rest.startswith("- EXTENSION "):
        return True
    # The platform's event triggers and change capture's triggers stay on the source.
    return entry.desc in ("TRIGGER", "EVENT TRIGGER") and entry.oid in behind.oids


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
