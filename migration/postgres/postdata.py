"""Post-data on resume: which entries an interrupted run already applied to the target."""

from __future__ import annotations

from migration.postgres.catalog import Conn
from migration.postgres.connection import pg_errors
from migration.postgres.conninfo import PgEndpoint
from migration.postgres.schema import TocEntry

__all__ = ["pending_post_data"]

# catalog oid of the TOC entry -> (source lookup giving table and name, target existence check)
_CHECKS: dict[int, tuple[str, str]] = {
    2606: (
        "SELECT format('%%I.%%I', n.nspname, c.relname), o.conname FROM pg_constraint o "
        "JOIN pg_class c ON c.oid = o.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE o.oid = %s",
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s)",
    ),
    2620: (
        "SELECT format('%%I.%%I', n.nspname, c.relname), t.tgname FROM pg_trigger t "
        "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE t.oid = %s",
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = to_regclass(%s) AND tgname = %s)",
    ),
    3256: (
        "SELECT format('%%I.%%I', n.nspname, c.relname), p.polname FROM pg_policy p "
        "JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE p.oid = %s",
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_policy WHERE polrelid = to_regclass(%s) AND polname = %s)",
    ),
    1259: (
        "SELECT format('%%I.%%I', n.nspname, c.relname), '' FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s",
        "SELECT to_regclass(%s) IS NOT NULL AND %s::text IS NOT NULL",
    ),
}


def pending_post_data(
    source: PgEndpoint, source_conn: Conn, target: PgEndpoint, target_conn: Conn, entries: list[TocEntry]
) -> list[TocEntry]:
    """*entries* minus the constraints, triggers, policies and indexes already on the target.

    Other entries (attachments, row security switches) are safe to apply twice.
    """
    pending: list[TocEntry] = []
    for entry in entries:
        check = _CHECKS.get(entry.catalog)
        if check is not None:
            with pg_errors("source", source):
                row = source_conn.execute(check[0], (entry.oid,)).fetchone()
            if row is not None:
                with pg_errors("target", target):
                    exists = target_conn.execute(check[1], (row[0], row[1])).fetchone()
                if exists and exists[0]:
                    continue
        pending.append(entry)
    return pending
