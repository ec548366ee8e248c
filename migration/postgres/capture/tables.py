"""Which tables change capture can follow: those with a key to re-read a row by."""

from __future__ import annotations

from dataclasses import dataclass

from migration.postgres.catalog import Conn
from migration.postgres.footprint import FERRY_SCHEMAS, NOT_OUR_SCHEMA

__all__ = ["CaptureTable", "capture_tables"]

_SKIPPED_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast", "_heroku", *FERRY_SCHEMAS)

# A primary key, else the narrowest unique index that is not partial, has no expression and
# whose columns are all NOT NULL: a key that names exactly one row.
_TABLES = (
    r"""
SELECT c.oid::int, format('%%I.%%I', n.nspname, c.relname),
       CASE WHEN %(sizes)s THEN pg_catalog.pg_total_relation_size(c.oid) ELSE 0 END,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
          FROM (SELECT i.indkey, i.indisprimary FROM pg_catalog.pg_index i
                 WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
                   AND i.indexprs IS NULL
                   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute x
                                    WHERE x.attrelid = c.oid AND x.attnum = ANY(i.indkey) AND NOT x.attnotnull)
                 ORDER BY i.indisprimary DESC, i.indnatts, i.indexrelid LIMIT 1) AS best,
               unnest(best.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum)
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND c.relpersistence <> 't'
   AND n.nspname <> ALL(%(skipped)s) AND n.nspname NOT LIKE 'pg\_%%' AND """
    + NOT_OUR_SCHEMA.replace("%", "%%")
    + r"""
 ORDER BY 2
"""
)


@dataclass(frozen=True)
class CaptureTable:
    """A table of the source; ``key`` is empty when no key names one row (not capturable)."""

    oid: int
    name: str
    bytes: int
    key: tuple[str, ...]

    @property
    def capturable(self) -> bool:
        return bool(self.key)


def capture_tables(conn: Conn, capture_schema: str, *, sizes: bool = True) -> list[CaptureTable]:
    """Every plain table of the source (capture's own schemas left out), with its key.

    :param sizes: read each table's size on disk (``bytes``; 0 when not).
    """
    rows = conn.execute(_TABLES, {"skipped": [*_SKIPPED_SCHEMAS, capture_schema], "sizes": sizes}).fetchall()
    return [CaptureTable(int(r[0]), str(r[1]), int(r[2]), tuple(r[3] or ())) for r in rows]
