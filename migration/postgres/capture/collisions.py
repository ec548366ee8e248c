"""Rows on the target that stand in the way of incoming ones, by every unique index and exclusion constraint.

Apply replaces rows by their key, but values move between rows across transactions (an e-mail
address handed from one account to another, a booking's slot taken by another booking): the
incoming row then collides with a row still on the target whose own change is in a later batch.
Such rows are found here, taken out, and read again by their key from the same snapshot.

Every kind of index the target can refuse a row by is covered, as the source's catalog describes
it: unique indexes on columns or on expressions (``lower(email)``), partial ones (``WHERE NOT
deleted``), ``NULLS NOT DISTINCT`` (PostgreSQL 15+), and exclusion constraints, with their
operators, expressions and predicates. Each index's columns are written out as the catalog prints
them, once over the target table and once over the incoming rows (a temporary table of the same
shape, where the same unqualified names resolve to its own columns), so the planner matches the
index's own expression and predicate and looks colliders up through the index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import sql

from migration.postgres.catalog import Conn

__all__ = ["Conflict", "conflicts_of", "take_out_colliders"]


@dataclass(frozen=True)
class Conflict:
    """One index that can refuse a row: its key columns' definitions and their operators, its predicate.

    :param expressions: each key column as the catalog prints it (a quoted name, or an expression), under
        the index's collation.
    :param operators: ``OPERATOR(schema.op)`` per column: the opclass's equality, or the exclusion operator.
    :param nulls_equal: ``NULLS NOT DISTINCT``: two NULLs collide.
    """

    name: str
    expressions: tuple[str, ...]
    operators: tuple[str, ...]
    predicate: str | None
    nulls_equal: bool


def _conflicts_query(major: int) -> str:
    key_count = "i.indnkeyatts" if major >= 11 else "i.indnatts"
    nulls = "i.indnullsnotdistinct" if major >= 15 else "false"
    return f"""
SELECT c.relname,
       (SELECT array_agg(pg_catalog.pg_get_indexdef(i.indexrelid, k, true) ORDER BY k)
          FROM generate_series(1, {key_count}) k),
       (SELECT array_agg(
                 coalesce(
                   (SELECT pg_catalog.format('OPERATOR(%%I.%%s)', n.nspname, o.oprname)
                      FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
                     WHERE o.oid = x.conexclop[k]),
                   (SELECT pg_catalog.format('OPERATOR(%%I.%%s)', n.nspname, o.oprname)
                      FROM pg_catalog.pg_opclass oc
                      JOIN pg_catalog.pg_amop a ON a.amopfamily = oc.opcfamily AND a.amopstrategy = 3
                           AND a.amoplefttype = oc.opcintype AND a.amoprighttype = oc.opcintype
                           AND a.amopmethod = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'btree')
                      JOIN pg_catalog.pg_operator o ON o.oid = a.amopopr
                      JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
                     WHERE oc.oid = i.indclass[k - 1]),
                   'OPERATOR(pg_catalog.=)') ORDER BY k)
          FROM generate_series(1, {key_count}) k),
       pg_catalog.pg_get_expr(i.indpred, i.indrelid, true),
       {nulls},
       (SELECT array_agg(coalesce((SELECT pg_catalog.format(' COLLATE %%I.%%I', cn.nspname, co.collname)
                                     FROM pg_catalog.pg_collation co
                                     JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
                                    WHERE co.oid = i.indcollation[k - 1]), '') ORDER BY k)
          FROM generate_series(1, {key_count}) k),
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
          FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
          JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE k.ord <= {key_count}),
       i.indexprs IS NULL AND i.indpred IS NULL
  FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
  LEFT JOIN pg_catalog.pg_constraint x ON x.conindid = i.indexrelid AND x.contype = 'x'
 WHERE i.indrelid = %s AND (i.indisunique OR x.oid IS NOT NULL) AND i.indisvalid
 ORDER BY c.relname
"""


def conflicts_of(source: Conn, rel: int, key: tuple[str, ...]) -> tuple[Conflict, ...]:
    """Every index of table *rel* (on the source) that can refuse a row, but the one that is the apply's key.

    Read with the caller's ``search_path`` empty, so every name in an expression is qualified."""
    major = (source.info.server_version // 10000) or 0
    found = []
    for name, expressions, operators, predicate, nulls, collations, columns, plain in source.execute(
        _conflicts_query(major), (rel,)
    ):
        if plain and tuple(columns or ()) == key:
            continue  # the key itself: its rows were taken out already
        # The index's own collation, which the printed column leaves out (a case-insensitive one
        # makes 'y' and 'Y' collide where the column's own would not).
        written = tuple(f"({e}){c}" for e, c in zip(expressions, collations, strict=True))
        found.append(Conflict(str(name), written, tuple(operators), predicate, bool(nulls)))
    return tuple(found)


def _where(conflict: Conflict) -> sql.Composable:
    return sql.SQL(" WHERE ({})").format(sql.SQL(conflict.predicate)) if conflict.predicate else sql.SQL("")


def _null_patterns(target: Conn, conflict: Conflict) -> list[tuple[bool, ...]]:
    """Which columns are NULL, per distinct pattern among the incoming rows (NULLS NOT DISTINCT only)."""
    nulls = sql.SQL(", ").join(sql.SQL("({}) IS NULL").format(sql.SQL(e)) for e in conflict.expressions)
    query = sql.SQL("SELECT DISTINCT {} FROM pg_temp._ferry_incoming{}").format(nulls, _where(conflict))
    return [tuple(bool(v) for v in row) for row in target.execute(query)]


def _delete(table: str, key: tuple[str, ...], conflict: Conflict, pattern: tuple[bool, ...]) -> sql.Composed:
    """One DELETE taking out the target's rows that collide with incoming ones whose NULL columns are *pattern*.

    The incoming side is a subquery whose only columns are ``__ferry_c<i>``: in the DELETE's own WHERE
    the index's unqualified names then resolve to the target table, inside the subquery to the
    incoming rows, and the same expression text serves both."""
    keep = [sql.SQL("({}) IS {}NULL").format(sql.SQL(e), sql.SQL("" if null else "NOT ")) for e, null in
            zip(conflict.expressions, pattern, strict=True)]  # fmt: skip
    if conflict.predicate:
        keep.insert(0, sql.SQL("({})").format(sql.SQL(conflict.predicate)))
    columns = sql.SQL(", ").join(
        sql.SQL("({}) AS {}").format(sql.SQL(e), sql.Identifier(f"__ferry_c{i}"))
        for i, e in enumerate(conflict.expressions)
    )
    match = [
        sql.SQL("({}) IS NULL").format(sql.SQL(e))
        if null
        else sql.SQL("({}) {} __ferry_i.{}").format(sql.SQL(e), sql.SQL(op), sql.Identifier(f"__ferry_c{i}"))
        for i, (e, op, null) in enumerate(zip(conflict.expressions, conflict.operators, pattern, strict=True))
    ]
    if conflict.predicate:
        match.append(sql.SQL("({})").format(sql.SQL(conflict.predicate)))
    return sql.SQL(
        "DELETE FROM ONLY {t} USING (SELECT {columns} FROM pg_temp._ferry_incoming WHERE {keep}) "
        "AS __ferry_i WHERE {match} RETURNING pg_catalog.jsonb_build_object({returned})"
    ).format(
        t=sql.SQL(table),
        columns=columns,
        keep=sql.SQL(" AND ").join(keep),
        match=sql.SQL(" AND ").join(match),
        returned=sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(c), sql.Identifier(c)) for c in key),
    )


def take_out_colliders(
    target: Conn, table: str, key: tuple[str, ...], conflicts: tuple[Conflict, ...]
) -> list[dict[str, Any]]:
    """Delete the target's rows that collide with the rows in ``pg_temp._ferry_incoming`` on any of
    *conflicts*; returns their keys (as the log holds keys: jsonb), to be read again from the source."""
    found: list[dict[str, Any]] = []
    for conflict in conflicts:
        # NULLS DISTINCT: a NULL never collides. NULLS NOT DISTINCT: one DELETE per pattern of NULL
        # columns among the incoming rows, each column matched by its operator or by IS NULL, both of
        # which the index answers (IS NOT DISTINCT FROM would read the whole table).
        patterns = _null_patterns(target, conflict) if conflict.nulls_equal else [(False,) * len(conflict.operators)]
        for pattern in patterns:
            found += [dict(r[0]) for r in target.execute(_delete(table, key, conflict, pattern)).fetchall()]
    return found
