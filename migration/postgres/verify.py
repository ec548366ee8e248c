"""``ferry pg verify``: is the target the same database as the source?

quick: catalog diff (tables, columns, indexes, constraints, triggers, policies,
extensions), exact row counts, sequences not behind the source, large object count.
full: also order-independent checksums per table, split into key ranges so that a
mismatch is located, and large object contents. Materialized views are compared as
:mod:`migration.postgres.matviews` says (a view stale on the source is a note).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import PgEndpoint, parse_url
from migration.postgres.footprint import FERRY_SCHEMAS, FOLLOW_FOREIGN_KEYS, NOT_OUR_SCHEMA, NOT_OUR_TRIGGER
from migration.postgres.matviews import compare_matview
from migration.verify import Difference, VerifyReport

__all__ = [
    "DataTable",
    "DatabaseVerifyReport",
    "Difference",
    "SnapshotPair",
    "check_table",
    "compare_objects",
    "compare_objects_in",
    "key_ranges",
    "open_snapshot",
    "present_data_tables",
    "range_checksum",
    "row_count",
    "verify_databases",
]

Mode = Literal["quick", "full", "live", "changes", "witness"]
_ROWS_PER_RANGE = 250_000
# ferry's own schemas: the copy's resume state, the follow's batches, and change capture on the source
# (every capture, whatever its schema is called: found by its mark).
_USER_SCHEMAS = (
    f"NOT IN ('pg_catalog', 'information_schema', {', '.join(repr(s) for s in FERRY_SCHEMAS)}) "
    f"AND n.nspname NOT LIKE 'pg\\_%' AND {NOT_OUR_SCHEMA}"
)


def _own(relation_oid: str) -> str:
    """Not a member of an extension: an extension's own tables and views are the extension's
    business, and differ between its versions (pg_stat_statements gains columns)."""
    return (
        "NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_class'::regclass "
        f"AND x.objid = {relation_oid} AND x.deptype = 'e')"
    )


_CATALOG_QUERIES: dict[str, str] = {
    "extension": "SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace",
    "table": f"""SELECT format('%I.%I', n.nspname, c.relname),
                 c.relkind::text || CASE c.relpersistence WHEN 'u' THEN ' unlogged' ELSE '' END
                 || coalesce(' partition of ' || (SELECT format('%I.%I', pn.nspname, p.relname)
                   FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
                   JOIN pg_namespace pn ON pn.oid = p.relnamespace WHERE i.inhrelid = c.oid LIMIT 1), '')
                 || CASE WHEN c.relrowsecurity THEN ' rls' ELSE '' END
                 || CASE WHEN c.relforcerowsecurity THEN ' forced' ELSE '' END
                 || ' replica identity ' || c.relreplident::text
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND n.nspname {_USER_SCHEMAS} AND {_own("c.oid")}""",
    "column": f"""SELECT format('%I.%I.%I', n.nspname, c.relname, a.attname),
                  format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                  || CASE a.attidentity WHEN 'a' THEN ' identity always' WHEN 'd' THEN ' identity' ELSE '' END
                  || CASE WHEN a.attgenerated = 's' THEN ' generated ' || pg_get_expr(d.adbin, d.adrelid)
                          WHEN d.adbin IS NOT NULL THEN ' default ' || pg_get_expr(d.adbin, d.adrelid) ELSE '' END
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
              AND n.nspname {_USER_SCHEMAS} AND {_own("c.oid")}""",
    "index": f"""SELECT format('%I.%I', n.nspname, c.relname), pg_get_indexdef(c.oid)
                   || CASE WHEN i.indisvalid THEN '' ELSE ' (invalid)' END
                   || CASE WHEN i.indisreplident THEN ' (replica identity)' ELSE '' END
                   || CASE WHEN i.indisclustered THEN ' (clustered)' ELSE '' END
            FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname {_USER_SCHEMAS} AND {_own("i.indrelid")}""",
    "constraint": f"""SELECT format('%I.%I.%I', n.nspname, c.relname, o.conname),
                   pg_get_constraintdef(o.oid) || CASE WHEN o.convalidated THEN '' ELSE ' (not validated)' END
            FROM pg_constraint o JOIN pg_class c ON c.oid = o.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname {_USER_SCHEMAS} AND {_own("c.oid")}
             -- PostgreSQL 18 keeps NOT NULL as constraints too; columns compare it on every major.
             AND o.contype <> 'n'""",
    "trigger": f"""SELECT format('%I.%I.%I', n.nspname, c.relname, t.tgname), pg_get_triggerdef(t.oid)
            FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE NOT t.tgisinternal AND n.nspname {_USER_SCHEMAS} AND {_own("c.oid")} AND {NOT_OUR_TRIGGER}""",
    "policy": f"""SELECT format('%I.%I.%I', n.nspname, c.relname, p.polname),
                   p.polcmd::text || ' ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '')
            FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname {_USER_SCHEMAS} AND {_own("c.oid")}""",
}
# What the row checksums cannot see: DDL that changes what rows mean or what the app gets, while the
# tables' columns stay as they were (an enum label renamed, a function a generated column or a
# default calls replaced, a sequence's increment). Function bodies as written (prosrc), so servers of
# two majors print them alike.
_DEFINITION_QUERIES: dict[str, str] = {
    "type": f"""SELECT format('%I.%I', n.nspname, t.typname),
                   CASE t.typtype WHEN 'e' THEN 'enum ' || (SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
                                                           FROM pg_enum e WHERE e.enumtypid = t.oid)
                   ELSE 'domain ' || format_type(t.typbasetype, t.typtypmod)
                        || CASE WHEN t.typnotnull THEN ' not null' ELSE '' END
                        || coalesce(' default ' || t.typdefault, '')
                        || coalesce(' ' || (SELECT string_agg(pg_get_constraintdef(o.oid), ' ' ORDER BY o.conname)
                                              FROM pg_constraint o WHERE o.contypid = t.oid), '') END
              FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
             WHERE t.typtype IN ('e', 'd') AND n.nspname {_USER_SCHEMAS}
               AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_type'::regclass AND x.objid = t.oid
                               AND x.deptype = 'e')""",
    "function": f"""SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)),
                   format_type(p.prorettype, NULL) || ' ' || p.provolatile::text || ' ' || md5(p.prosrc)
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname {_USER_SCHEMAS} AND n.nspname <> '_heroku'
               AND NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = 'pg_proc'::regclass AND x.objid = p.oid
                               AND x.deptype = 'e')""",
}
# PostgreSQL 10 and later keep a sequence's definition in pg_sequence.
_SEQUENCE_DEFINITIONS = f"""SELECT format('%I.%I', n.nspname, c.relname),
       format_type(s.seqtypid, NULL) || ' increment ' || s.seqincrement || ' min ' || s.seqmin || ' max ' || s.seqmax
       || ' start ' || s.seqstart || ' cache ' || s.seqcache || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname {_USER_SCHEMAS}"""
_EXTENSION_VERSIONS = "SELECT extname, extversion FROM pg_extension"

_SESSION = (
    "SET search_path = ''",
    "SET TimeZone = 'UTC'",
    "SET DateStyle = 'ISO, YMD'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
    "SET lc_monetary = 'C'",
    "SET row_security = off",
)


@dataclass
class DatabaseVerifyReport(VerifyReport):
    """A PostgreSQL verification: catalogs, counts, sequences, large objects, and in ``full`` mode checksums."""

    store: str = "postgres"
    mode: Mode = "full"
    tables_checked: int = 0
    rows_checked: int = 0
    ranges_checked: int = 0

    def checked(self) -> dict[str, int]:
        return {"tables": self.tables_checked, "rows": self.rows_checked, "ranges": self.ranges_checked}

    def details(self) -> dict[str, Any]:
        return {"mode": self.mode}

    def summary(self) -> str:
        return f"{super().summary()} ({self.mode})"


def open_snapshot(endpoint: PgEndpoint) -> Conn:
    """A connection in a read-only repeatable-read transaction, its settings making row text comparable."""
    conn = connect(endpoint, autocommit=True)
    with pg_errors(endpoint.side, endpoint):
        for statement in _SESSION:
            conn.execute(statement)
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    return conn


def _catalog(conn: Conn) -> dict[str, dict[str, str]]:
    """Each kind of object this server can describe (``sequence definition`` from PostgreSQL 10)."""
    queries = {**_CATALOG_QUERIES, **_DEFINITION_QUERIES}
    if conn.info.server_version >= 100000:
        queries["sequence definition"] = _SEQUENCE_DEFINITIONS
    return {kind: {str(r[0]): str(r[1]) for r in conn.execute(q).fetchall()} for kind, q in queries.items()}


def _extension_notes(src: Conn, dst: Conn) -> list[str]:
    source = {str(r[0]): str(r[1]) for r in src.execute(_EXTENSION_VERSIONS)}
    target = {str(r[0]): str(r[1]) for r in dst.execute(_EXTENSION_VERSIONS)}
    return [
        f"extension {name}: version {source[name]} on the source, {target[name]} on the target"
        for name in sorted(source.keys() & target.keys())
        if source[name] != target[name]
    ]


def _diff_catalogs(src: dict[str, dict[str, str]], dst: dict[str, dict[str, str]]) -> list[Difference]:
    out: list[Difference] = []
    for kind in [k for k in src if k in dst]:  # a kind one side cannot describe is not compared
        a, b = src[kind], dst[kind]
        for name in sorted(a.keys() | b.keys()):
            if a.get(name) != b.get(name):
                out.append(Difference(kind, name, a.get(name, "(missing)"), b.get(name, "(missing)")))
    return out


@dataclass(frozen=True)
class DataTable:
    """A table whose rows verify compares, or a materialized view (populated or not).

    :param int_key: the single-column integer primary key that splits it into ranges, if any.
    """

    name: str
    int_key: str | None
    matview: bool = False


def _data_tables(conn: Conn) -> list[DataTable]:
    rows = conn.execute(
        f"""SELECT format('%I.%I', n.nspname, c.relname),
                   (SELECT quote_ident(a.attname) FROM pg_index i
                      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                     WHERE i.indrelid = c.oid AND i.indisprimary AND i.indnatts = 1
                       AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)),
                   c.relkind = 'm'
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'm') AND n.nspname {_USER_SCHEMAS} ORDER BY 1"""
    ).fetchall()
    return [DataTable(str(r[0]), str(r[1]) if r[1] else None, bool(r[2])) for r in rows]


def key_ranges(conn: Conn, table: DataTable, rows: int) -> list[tuple[str, str]]:
    """``(label, WHERE condition)`` pairs covering the whole table."""
    count = min(256, math.ceil(rows / _ROWS_PER_RANGE))
    if table.int_key is None or count <= 1:
        return [("all rows", "true")]
    row = conn.execute(f"SELECT min({table.int_key}), max({table.int_key}) FROM ONLY {table.name}").fetchone()
    assert row is not None and row[0] is not None
    low, high = int(row[0]), int(row[1])
    step = max(1, math.ceil((high - low + 1) / count))
    out: list[tuple[str, str]] = []
    for i in range(count):
        lo, hi = low + i * step, low + (i + 1) * step
        cond = [f"{table.int_key} >= {lo}" if i else None, f"{table.int_key} < {hi}" if i < count - 1 else None]
        label = f"{table.int_key} in [{lo if i else '-inf'}, {hi if i < count - 1 else '+inf'})"
        out.append((label, " AND ".join(c for c in cond if c)))
    return out


def range_checksum(conn: Conn, table: str, where: str) -> tuple[int, str]:
    row = conn.execute(
        f"SELECT count(*), coalesce(sum(hashtextextended(__ferry_r::text, 0)), 0)::text "
        f"FROM ONLY {table} AS __ferry_r WHERE {where}"
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def _sequences(conn: Conn) -> dict[str, int]:
    names = conn.execute(
        f"SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind = 'S' AND n.nspname {_USER_SCHEMAS}"
    ).fetchall()
    values: dict[str, int] = {}
    for (name,) in names:
        row = conn.execute(f"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {name}").fetchone()
        assert row is not None
        values[str(name)] = int(row[0])
    return values


def _large_objects(conn: Conn, full: bool) -> dict[int, str]:
    query = "SELECT oid, " + ("md5(lo_get(oid))" if full else "''") + " FROM pg_largeobject_metadata"
    return {int(r[0]): str(r[1]) for r in conn.execute(query).fetchall()}


def compare_objects(
    source: PgEndpoint, target: PgEndpoint, report: DatabaseVerifyReport, *, large_object_contents: bool
) -> list[DataTable]:
    """Catalogs, sequences and large objects into *report*; returns the data tables both sides have."""
    with SnapshotPair(source, target) as (src, dst):
        return compare_objects_in(src, dst, source, target, report, large_object_contents=large_object_contents)


def _pending_validation(target: Conn) -> set[str]:
    """The foreign keys the follow (or a resumed copy) put back ``NOT VALID`` and has not validated yet,
    named ``schema.table.constraint``: read from the follow's record, which capture writes."""
    row = target.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (FOLLOW_FOREIGN_KEYS,)).fetchone()
    if not (row and row[0]):
        return set()
    query = f"SELECT format('%s.%I', rel, name) FROM {FOLLOW_FOREIGN_KEYS} WHERE state = 'not valid'"
    return {str(r[0]) for r in target.execute(query)}


def compare_objects_in(
    src: Conn,
    dst: Conn,
    source: PgEndpoint,
    target: PgEndpoint,
    report: DatabaseVerifyReport,
    *,
    large_object_contents: bool,
) -> list[DataTable]:
    """:func:`compare_objects` on snapshots already open (*src*, *dst*: from :class:`SnapshotPair`)."""

    def read_target() -> tuple[dict[str, dict[str, str]], set[str], dict[str, int], dict[int, str]]:
        with pg_errors("target", target):
            return _catalog(dst), _pending_validation(dst), _sequences(dst), _large_objects(dst, large_object_contents)

    # Inside the freeze every millisecond is the app's: the two sides are read at once.
    with ThreadPoolExecutor(1) as pool:
        target_read = pool.submit(read_target)
        with pg_errors("source", source):
            src_catalog, tables = _catalog(src), _data_tables(src)
            src_seq, src_lo = _sequences(src), _large_objects(src, large_object_contents)
        dst_catalog, validating, dst_seq, dst_lo = target_read.result()
    with pg_errors("target", target):
        report.notes = _extension_notes(src, dst)
    for diff in _diff_catalogs(src_catalog, dst_catalog):
        if (
            diff.kind == "constraint"
            and diff.name in validating
            and diff.target == f"{diff.source} NOT VALID (not validated)"
        ):
            report.notes.append(
                f"foreign key {diff.name}: added NOT VALID after the follow, validated after the unfreeze"
            )
        else:
            report.add(diff)
    for name, value in sorted(src_seq.items()):
        if name in dst_seq and dst_seq[name] < value:
            report.add(Difference("sequence", name, str(value), f"{dst_seq[name]} (behind)"))
    for oid in sorted(src_lo.keys() | dst_lo.keys()):
        if src_lo.get(oid) != dst_lo.get(oid):
            report.add(
                Difference(
                    "large object",
                    str(oid),
                    src_lo.get(oid, "(missing)") or "present",
                    dst_lo.get(oid, "(missing)") or "present",
                )
            )
    present = set(dst_catalog["table"])
    return [t for t in tables if t.name in present]


def present_data_tables(source: PgEndpoint, target: PgEndpoint) -> list[DataTable]:
    """The source's tables (and materialized views) the target has too."""
    with SnapshotPair(source, target) as (src, dst):
        with pg_errors("source", source):
            tables = _data_tables(src)
        with pg_errors("target", target):
            present = {t.name for t in _data_tables(dst)}
    return [t for t in tables if t.name in present]


def verify_databases(
    source_url: str,
    target_url: str,
    *,
    mode: Mode = "quick",
    jobs: int = 4,
    on_table: Callable[[str], None] | None = None,
) -> DatabaseVerifyReport:
    """Compare source and target; the report lists every difference found.

    :param mode: ``quick`` (catalogs, counts, sequences) or ``full`` (also checksums).
    :param jobs: tables checked in parallel.
    :param on_table: called with each table's name as it is checked.
    """
    started = time.monotonic()
    source = parse_url(source_url, "source")
    target = parse_url(target_url, "target")
    report = DatabaseVerifyReport(mode=mode)
    checked = compare_objects(source, target, report, large_object_contents=mode == "full")

    notes: list[str] = []

    def check(table: DataTable) -> tuple[list[Difference], int, int]:
        if on_table:
            on_table(table.name)
        with SnapshotPair(source, target) as (s, d):
            return check_table(s, d, source, target, table, mode, notes=notes)

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for diffs, rows, ranges in pool.map(check, checked):
            report.add_all(diffs)
            report.rows_checked += rows
            report.ranges_checked += ranges
    report.tables_checked = len(checked)
    report.notes += sorted(notes)
    report.seconds = time.monotonic() - started
    return report


class SnapshotPair:
    """A read-only snapshot of each side, opened together and closed together."""

    def __init__(self, source: PgEndpoint, target: PgEndpoint) -> None:
        self.source, self.target = source, target
        self.conns: list[Conn] = []

    def __enter__(self) -> tuple[Conn, Conn]:
        with ThreadPoolExecutor(2) as pool:  # a connection takes milliseconds: both are opened at once
            opening = [pool.submit(open_snapshot, side) for side in (self.source, self.target)]
        self.conns = [future.result() for future in opening if future.exception() is None]
        if len(self.conns) < 2:
            self.__exit__()
            for future in opening:
                future.result()  # the source's error first, as when they were opened one after the other
        return self.conns[0], self.conns[1]

    def __exit__(self, *exc: object) -> None:
        for conn in self.conns:
            conn.close()


def row_count(conn: Conn, table: str) -> int:
    """Exact rows of *table* itself (``ONLY``: not its children's)."""
    row = conn.execute(f"SELECT count(*) FROM ONLY {table}").fetchone()
    return int(row[0]) if row else 0


def check_table(
    src: Conn,
    dst: Conn,
    source: PgEndpoint,
    target: PgEndpoint,
    table: DataTable,
    mode: Mode,
    *,
    notes: list[str] | None = None,
) -> tuple[list[Difference], int, int]:
    """Row counts, and in every mode but ``quick`` checksums by key range, of one table.

    A materialized view is compared as :func:`migration.postgres.matviews.compare_matview` says
    (populated or not; a view stale on the source, refreshed on the target, is a note).

    :param notes: receives such notes (left out when ``None``).
    :returns: the differences, the source's rows, the ranges compared.
    """
    if table.matview:
        found, rows, note = compare_matview(src, dst, source, target, table.name, full=mode != "quick")
        if note is not None and notes is not None:
            notes.append(note)
        return found, rows, 0 if mode == "quick" or not rows else 1
    with pg_errors("source", source):
        rows_s = row_count(src, table.name)
    with pg_errors("target", target):
        rows_t = row_count(dst, table.name)
    if rows_s != rows_t:
        return [Difference("row count", table.name, str(rows_s), str(rows_t))], rows_s, 0
    if mode == "quick":
        return [], rows_s, 0
    diffs: list[Difference] = []
    with pg_errors("source", source):
        ranges = key_ranges(src, table, rows_s)
    for label, where in ranges:
        with pg_errors("source", source):
            count_s, sum_s = range_checksum(src, table.name, where)
        with pg_errors("target", target):
            count_t, sum_t = range_checksum(dst, table.name, where)
        if (count_s, sum_s) != (count_t, sum_t):
            diffs.append(
                Difference("checksum", f"{table.name} {label}", f"{count_s} rows, {sum_s}", f"{count_t} rows, {sum_t}")
            )
    return diffs, rows_s, len(ranges)
