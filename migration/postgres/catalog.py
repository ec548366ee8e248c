"""What the source holds, read from its catalogs inside the copy's snapshot."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg
from psycopg.rows import TupleRow

__all__ = [
    "IndexBuild",
    "TableInfo",
    "read_large_objects",
    "read_matviews",
    "read_sequences",
    "read_tables",
    "server_major",
]

Conn = psycopg.Connection[TupleRow]


@dataclass(frozen=True)
class IndexBuild:
    """One index, and the constraint it backs if any, to build on a loaded table.

    :param oid: the index's oid on the source (matches its post-data TOC entry).
    :param constraint_oid: the constraint's oid when the index backs one.
    :param index_sql: ``CREATE INDEX`` statement, or ``None`` for an exclusion
        constraint, whose index the ``ALTER TABLE`` builds.
    :param constraint_sql: ``ALTER TABLE … ADD CONSTRAINT`` statement or ``None``.
    :param after_sql: what pg_dump would have said with the index: ``REPLICA IDENTITY
        USING INDEX``, ``CLUSTER ON`` (each safe to repeat).
    """

    name: str
    qualified_name: str
    oid: int
    constraint_oid: int | None
    constraint_name: str | None
    index_sql: str | None
    constraint_sql: str | None
    cost: float = 0.0
    after_sql: tuple[str, ...] = ()


@dataclass
class TableInfo:
    """A table whose rows are copied.

    :param binary_safe: every copied column has a built-in type (or an enum, or a domain
        over a built-in type) whose binary form does not embed type oids, so the rows can
        travel in ``COPY … (FORMAT binary)`` between servers of the same major version.
    """

    oid: int
    qualified_name: str
    schema: str
    name: str
    columns: list[str]
    bytes: int
    pages: int
    est_rows: int
    int_key: str | None
    binary_safe: bool = False
    indexes: list[IndexBuild] = field(default_factory=list)

    @property
    def priority(self) -> float:
        """Rough work on the table's critical path: its rows, then its index builds."""
        return self.bytes + sum(i.cost for i in self.indexes)

    @property
    def column_list(self) -> str:
        return ", ".join(self.columns)


# Build time per byte of finished index, relative to a B-tree (measured on PostgreSQL 15:
# a jsonb GIN index takes about 8x as long per byte as a B-tree).
INDEX_BUILD_WEIGHT = {"btree": 1.0, "hash": 1.0, "gin": 8.0, "gist": 4.0, "spgist": 4.0, "brin": 0.1}


def server_major(conn: Conn) -> int:
    row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
    assert row is not None
    return int(row[0]) // 10000


_TABLES = """
SELECT c.oid, format('%%I.%%I', n.nspname, c.relname), n.nspname, c.relname,
       pg_table_size(c.oid), pg_relation_size(c.oid) / current_setting('block_size')::int,
       greatest(c.reltuples, 0)::bigint,
       (SELECT array_agg(quote_ident(a.attname) ORDER BY a.attnum) FROM pg_attribute a
         WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''),
       (SELECT quote_ident(a.attname) FROM pg_index i
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
         WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnatts = 1
           AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)),
       NOT EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
                      AND NOT (t.typsend::oid <> 0 AND t.typreceive::oid <> 0
                               AND (t.oid < 16384 OR t.typtype = 'e'
                                    OR (t.typtype = 'd' AND t.typbasetype < 16384))))
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = ANY(%s) AND c.relkind = 'r'
"""

_INDEXES = """
SELECT i.indrelid, ic.relname, format('%%I.%%I', n.nspname, ic.relname), i.indexrelid,
       con.oid, con.conname, con.contype, pg_get_indexdef(i.indexrelid),
       pg_get_constraintdef(con.oid), con.condeferrable, con.condeferred,
       format('%%I.%%I', tn.nspname, t.relname), pg_relation_size(i.indexrelid),
       (SELECT amname FROM pg_am WHERE oid = ic.relam), i.indisreplident, i.indisclustered
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = ic.relnamespace
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace tn ON tn.oid = t.relnamespace
  LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
       AND con.contype IN ('p', 'u', 'x')
 WHERE i.indrelid = ANY(%s)
"""


def read_tables(conn: Conn, table_oids: list[int], built_objects: set[tuple[int, int]]) -> list[TableInfo]:
    """Tables (relkind ``r``, partitions included) among *table_oids*, biggest first.

    *built_objects* are the ``(catalog, oid)`` pairs of post-data entries in the dump;
    only indexes and constraints that pg_dump would restore are built.
    """
    tables: dict[int, TableInfo] = {}
    for row in conn.execute(_TABLES, (table_oids,)).fetchall():
        oid, qname, schema, name, size, pages, est_rows, columns, int_key, binary_safe = row
        tables[int(oid)] = TableInfo(
            oid=int(oid),
            qualified_name=qname,
            schema=schema,
            name=name,
            columns=list(columns or []),
            bytes=int(size),
            pages=int(pages),
            est_rows=int(est_rows),
            int_key=int_key if int_key else None,
            binary_safe=bool(binary_safe),
        )
    for row in conn.execute(_INDEXES, (list(tables),)).fetchall():
        (
            relid,
            name,
            qname,
            idx_oid,
            con_oid,
            con_name,
            con_type,
            index_def,
            con_def,
            deferrable,
            deferred,
            table_qname,
            index_bytes,
            access_method,
            replica_identity,
            clustered,
        ) = row
        cost = float(index_bytes) * INDEX_BUILD_WEIGHT.get(str(access_method), 1.0)
        final_name = _quote(con_name if con_oid is not None else name)
        after: list[str] = []
        if replica_identity:
            after.append(f"ALTER TABLE ONLY {table_qname} REPLICA IDENTITY USING INDEX {final_name}")
        if clustered:
            after.append(f"ALTER TABLE {table_qname} CLUSTER ON {final_name}")
        table = tables[int(relid)]
        idx_oid_i = int(idx_oid)
        if con_oid is not None:
            if (2606, int(con_oid)) not in built_objects:
                continue
            alter = f"ALTER TABLE ONLY {table_qname} ADD CONSTRAINT {_quote(con_name)} "
            if con_type == "x":
                index_sql, con_sql = None, alter + con_def
            else:
                kind = "PRIMARY KEY" if con_type == "p" else "UNIQUE"
                timing = ""
                if deferrable:
                    timing = " DEFERRABLE INITIALLY DEFERRED" if deferred else " DEFERRABLE"
                index_sql = index_def
                con_sql = alter + f"{kind} USING INDEX {_quote(name)}{timing}"
            table.indexes.append(
                IndexBuild(name, qname, idx_oid_i, int(con_oid), con_name, index_sql, con_sql, cost, tuple(after))
            )
        elif (1259, idx_oid_i) in built_objects:
            table.indexes.append(IndexBuild(name, qname, idx_oid_i, None, None, index_def, None, cost, tuple(after)))
    for table in tables.values():
        table.indexes.sort(key=lambda i: -i.cost)
    return sorted(tables.values(), key=lambda t: (-t.priority, t.qualified_name))


def _quote(name: str) -> str:
    return psycopg.sql.Identifier(name).as_string()


def read_sequences(conn: Conn, oids: list[int]) -> list[tuple[str, int, bool]]:
    """``(qualified name, last_value, is_called)`` for each sequence, in the snapshot."""
    result: list[tuple[str, int, bool]] = []
    names = conn.execute(
        "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY(%s) AND c.relkind = 'S' ORDER BY 1",
        (oids,),
    ).fetchall()
    for (qname,) in names:
        row = conn.execute(f"SELECT last_value, is_called FROM {qname}").fetchone()
        assert row is not None
        result.append((qname, int(row[0]), bool(row[1])))
    return result


def read_matviews(conn: Conn, oids: list[int]) -> list[str]:
    """Qualified names of the materialized views that hold data, in creation order."""
    rows = conn.execute(
        "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.oid = ANY(%s) AND c.relkind = 'm' AND c.relispopulated ORDER BY c.oid",
        (oids,),
    ).fetchall()
    return [r[0] for r in rows]


def read_large_objects(conn: Conn) -> list[int]:
    rows = conn.execute("SELECT oid FROM pg_largeobject_metadata ORDER BY oid").fetchall()
    return [int(r[0]) for r in rows]


def foreign_keys_outside(conn: Conn, table_oids: list[int]) -> dict[int, str]:
    """Foreign keys of copied tables that reference a table not copied: oid -> name."""
    rows = conn.execute(
        "SELECT o.oid, format('%%I on %%s', o.conname, o.conrelid::regclass) FROM pg_constraint o "
        "WHERE o.contype = 'f' AND o.conrelid = ANY(%s) AND NOT o.confrelid = ANY(%s)",
        (table_oids, table_oids),
    ).fetchall()
    return {int(r[0]): str(r[1]) for r in rows}
