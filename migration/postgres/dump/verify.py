"""``ferry pg verify --from-dump``: does the target hold what the archive holds?

Read from the archive itself, apart from the restore: every object its table of contents lists
(schemas, extensions, types, domains, functions, tables, views, sequences, indexes, constraints —
a domain's too —, triggers, policies) exists on the target, as does every comment on a relation or a
column; no table is on the target that the archive lacks, each sequence exists and is not behind the
value the archive sets, every large object exists, every materialized view the archive fills is
populated; and each table holds as many rows as the archive's data for it (partitions loaded through
their root: the root's tree as many as all its entries). Those are counted by a ``pg_restore`` of
their own, one per table (``--jobs`` at a time), reading the COPY lines pg_restore writes: the
loader's count is not trusted, it is what is checked. A name read from the archive reaches the target
as a parameter or a quoted identifier, never as SQL. Definitions, comments' text, comments on other
objects and grants are not checked.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from migration.children import die_with_parent
from migration.errors import ToolError
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import parse_url
from migration.postgres.copy.tools import ClientTools
from migration.postgres.copy.workdir import schema_workdir
from migration.postgres.dump.archive import Archive, ArchiveEntry
from migration.postgres.dump.selection import Selection, large_object_oids, select_entries
from migration.postgres.dump.source import open_dump
from migration.postgres.footprint import FERRY_SCHEMAS
from migration.progress import PlainProgress, ProgressSink
from migration.verify import Difference, VerifyReport

__all__ = ["ArchiveVerifyReport", "count_archive_rows", "verify_archive", "verify_dump"]

_SETVAL = re.compile(r"setval\('((?:[^']|'')*)', (-?\d+), (true|false)\)")
_OUTSIDE = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'"
_OWN = "NOT EXISTS (SELECT 1 FROM pg_depend x WHERE x.classid = '{catalog}'::regclass AND x.objid = {oid} AND x.deptype = 'e')"
_KINDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE", "f": "FOREIGN TABLE",
          "i": "INDEX", "I": "INDEX"}  # fmt: skip
# What the target holds, named as pg_dump names each entry: (desc, schema, tag).
_OBJECTS = {
    "relation": f"""SELECT c.relkind::text, n.nspname, c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_OUTSIDE} AND c.relkind IN ('r','p','v','m','S','f','i','I')
        AND {_OWN.format(catalog="pg_class", oid="c.oid")}""",
    "constraint": f"""SELECT o.contype::text, n.nspname, c.relname || ' ' || o.conname FROM pg_constraint o
        JOIN pg_class c ON c.oid = o.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_OUTSIDE}
        UNION ALL SELECT o.contype::text, n.nspname, t.typname || ' ' || o.conname FROM pg_constraint o
        JOIN pg_type t ON t.oid = o.contypid JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {_OUTSIDE}""",
    "trigger": f"""SELECT 'TRIGGER', n.nspname, c.relname || ' ' || t.tgname FROM pg_trigger t
        JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE NOT t.tgisinternal AND {_OUTSIDE}""",
    "policy": f"""SELECT 'POLICY', n.nspname, c.relname || ' ' || p.polname FROM pg_policy p
        JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_OUTSIDE}""",
    "schema": f"SELECT 'SCHEMA', '', n.nspname FROM pg_namespace n WHERE {_OUTSIDE}",
    "extension": "SELECT 'EXTENSION', '', extname FROM pg_extension",
    "type": f"""SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, n.nspname, t.typname FROM pg_type t
        JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {_OUTSIDE}""",
    "function": f"""SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END, n.nspname,
        p.proname || '(' || pg_catalog.oidvectortypes(p.proargtypes) || ')' FROM pg_proc p
        JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_OUTSIDE}""",
}
# The comments on relations and their columns, tagged as pg_dump tags its COMMENT entries.
_COMMENTS = f"""SELECT n.nspname, CASE WHEN d.objsubid = 0 THEN (CASE c.relkind WHEN 'v' THEN 'VIEW'
        WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'i' THEN 'INDEX'
        WHEN 'I' THEN 'INDEX' ELSE 'TABLE' END) || ' ' || quote_ident(c.relname)
        ELSE 'COLUMN ' || quote_ident(c.relname) || '.' || quote_ident(a.attname) END
    FROM pg_description d JOIN pg_class c ON d.classoid = 'pg_class'::regclass AND c.oid = d.objoid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid AND d.objsubid > 0 WHERE {_OUTSIDE}"""
_COMMENTED = ("TABLE ", "COLUMN ", "INDEX ", "VIEW ", "MATERIALIZED VIEW ", "SEQUENCE ", "FOREIGN TABLE ")
_CONSTRAINT_DESCS = {"p": "CONSTRAINT", "u": "CONSTRAINT", "x": "CONSTRAINT", "f": "FK CONSTRAINT",
                     "c": "CHECK CONSTRAINT"}  # fmt: skip
_CHECKED = ("SCHEMA", "EXTENSION", "TYPE", "DOMAIN", "FUNCTION", "PROCEDURE", "TABLE", "VIEW", "MATERIALIZED VIEW",
            "SEQUENCE", "FOREIGN TABLE", "INDEX", "CONSTRAINT", "FK CONSTRAINT", "CHECK CONSTRAINT", "TRIGGER",
            "POLICY")  # fmt: skip


@dataclass
class ArchiveVerifyReport(VerifyReport):
    """A target checked against an archive: its objects, sequences, large objects and rows."""

    store: str = "postgres"
    archive: str = ""
    tables_checked: int = 0
    rows_checked: int = 0
    objects_checked: int = 0

    def checked(self) -> dict[str, int]:
        return {"tables": self.tables_checked, "rows": self.rows_checked, "objects": self.objects_checked}

    def details(self) -> dict[str, Any]:
        return {"mode": "archive", "archive": self.archive}

    def summary(self) -> str:
        return f"{super().summary()} (against {self.archive})"


def count_archive_rows(tools: ClientTools, archive: Archive, entry: ArchiveEntry, workdir: Path) -> int:
    """How many rows the archive holds for the TABLE DATA *entry*: the lines of its COPY, as pg_restore writes it.

    :raises ToolError: pg_restore fails, or its COPY has no end (the archive is damaged).
    """
    listing = workdir / f"count-{entry.dump_id}.list"
    listing.write_text(entry.line + "\n")
    args = [str(tools.pg_restore), f"--use-list={listing}", "--file=-", str(archive.path)]
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ),
                          preexec_fn=die_with_parent) as proc:  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        rows, state = 0, "header"
        for line in proc.stdout:
            if state == "rows":
                if line == b"\\.\n":
                    state = "ended"
                else:
                    rows += 1
            elif state == "header" and line.startswith(b"COPY "):
                state = "rows"
        stderr = proc.stderr.read().decode(errors="replace")
        code = proc.wait()
    if code != 0 or state != "ended":
        detail = next((ln for ln in stderr.splitlines() if "error" in ln.lower()), "its COPY has no end")
        raise ToolError(f"counting the rows of {entry.namespace}.{entry.tag} in the archive: {detail}", side="source")
    return rows


def _target_objects(conn: Conn) -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    conn.execute("SET search_path = ''")  # types in function signatures qualified as pg_dump writes them
    for kind, query in _OBJECTS.items():
        for desc, schema, tag in conn.execute(query).fetchall():
            if kind == "relation":
                desc = _KINDS[str(desc)]
            elif kind == "constraint":
                desc = _CONSTRAINT_DESCS.get(str(desc), "CONSTRAINT")
            found.add((str(desc), str(schema), str(tag)))
    return found


def _check_objects(conn: Conn, selection: Selection, report: ArchiveVerifyReport) -> None:
    present = _target_objects(conn)
    expected: set[tuple[str, str, str]] = set()
    listed = selection.pre_data + selection.post_data + [e for t in selection.tables for e in t.constraints + t.indexes]
    for entry in listed:
        if entry.desc not in _CHECKED:
            continue
        schema = "" if entry.desc in ("SCHEMA", "EXTENSION") else entry.namespace
        expected.add((entry.desc, schema, entry.tag))
        report.objects_checked += 1
        if (entry.desc, schema, entry.tag) not in present:
            name = f"{schema}.{entry.tag}" if schema else entry.tag
            report.add(Difference(f"{entry.desc.lower()} missing", name, "in the archive", "(missing)"))
    comments = {(str(r[0]), str(r[1])) for r in conn.execute(_COMMENTS).fetchall()}
    for entry in listed:
        if entry.desc == "COMMENT" and entry.tag.startswith(_COMMENTED):
            report.objects_checked += 1
            if (entry.namespace, entry.tag) not in comments:
                report.add(
                    Difference("comment missing", f"{entry.namespace}: {entry.tag}", "in the archive", "(missing)")
                )
    ours = {*FERRY_SCHEMAS}
    for desc, schema, tag in sorted(present):
        relation = desc in ("TABLE", "VIEW", "MATERIALIZED VIEW", "SEQUENCE", "FOREIGN TABLE")
        if relation and schema not in ours and (desc, schema, tag) not in expected:
            report.add(Difference(f"{desc.lower()} not in the archive", f"{schema}.{tag}", "(missing)", "present"))


def _check_values(conn: Conn, selection: Selection, archive: Archive, report: ArchiveVerifyReport) -> None:
    for entry in selection.sequences:
        match = _SETVAL.search(entry.defn)
        if match is None:
            continue
        name, value, called = match.group(1).replace("''", "'"), int(match.group(2)), match.group(3) == "true"
        wanted = value if called else value - 1
        have = _sequence_value(conn, name)
        if have is None:
            report.add(Difference("sequence missing", name, str(wanted), "(missing)"))
        elif have < wanted:
            report.add(Difference("sequence", name, str(wanted), f"{have} (behind)"))
    oids = large_object_oids(archive.entries)
    if oids:
        there = {int(r[0]) for r in conn.execute("SELECT oid FROM pg_largeobject_metadata").fetchall()}
        for oid in sorted(oids - there):
            report.add(Difference("large object", str(oid), "in the archive", "(missing)"))
        report.objects_checked += len(oids)
    for entry in selection.post_data:
        if entry.desc != "MATERIALIZED VIEW DATA":
            continue
        row = conn.execute(
            "SELECT relispopulated FROM pg_class WHERE oid = to_regclass(%s)",
            (sql.Identifier(entry.namespace, entry.tag).as_string(),),
        ).fetchone()
        if not (row and row[0]):
            name = f"{entry.namespace}.{entry.tag}"
            report.add(Difference("materialized view", name, "populated", "not populated" if row else "(missing)"))


def _sequence_value(conn: Conn, name: str) -> int | None:
    """The value *name* (a regclass literal, as the archive's ``setval`` names it) last gave, ``None`` when the
    target has no such sequence. The name is a parameter, then an identifier: never SQL of the archive's."""
    try:
        row = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.oid = pg_catalog.to_regclass(%s) AND c.relkind = 'S'",
            (name,),
        ).fetchone()
    except psycopg.Error:  # a name that does not parse (an error before PostgreSQL 16): no such sequence here
        return None
    if row is None:
        return None
    query = sql.SQL("SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {}")
    value = conn.execute(query.format(sql.Identifier(str(row[0]), str(row[1])))).fetchone()
    return int(value[0]) if value else None


def _count(conn: Conn, schema: str, name: str, only: bool) -> int | None:
    """The rows of a table (``None``: no such table), its partitions' with *only* false."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (sql.Identifier(schema, name).as_string(),)).fetchone()
    if not (exists and exists[0]):
        return None
    query = sql.SQL("SELECT count(*) FROM ONLY {}" if only else "SELECT count(*) FROM {}")
    row = conn.execute(query.format(sql.Identifier(schema, name))).fetchone()
    return int(row[0]) if row else None


def _check_rows(conn: Conn, selection: Selection, rows_of: dict[int, int], report: ArchiveVerifyReport) -> None:
    """Each table's rows; those of partitions loaded through their root summed over the root's tree (the root
    routes each row where the target's partitioning puts it: a hash on an enum may place it elsewhere)."""
    grouped: set[int] = set()
    for root in sorted({t.copy_into for t in selection.tables if not t.truncate}):
        tree = conn.execute(
            "SELECT n.nspname, c.relname, p.level FROM pg_catalog.pg_partition_tree(pg_catalog.to_regclass(%s)) p "
            "JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY p.level",
            (root,),
        ).fetchall()
        members = {(str(r[0]), str(r[1])) for r in tree}
        loads = [t for t in selection.tables if (t.entry.namespace, t.entry.tag) in members or t.copy_into == root]
        grouped |= {t.entry.dump_id for t in loads}
        rows = sum(rows_of[t.entry.dump_id] for t in loads)
        have = _count(conn, str(tree[0][0]), str(tree[0][1]), only=False) if tree else None
        if have != rows:
            report.add(
                Difference(
                    "row count", f"{root} (its partitions)", str(rows), "(missing)" if have is None else str(have)
                )
            )
        report.rows_checked += rows
    for load in selection.tables:
        entry = load.entry
        if entry.dump_id in grouped:
            continue
        rows = rows_of[entry.dump_id]
        have = _count(conn, entry.namespace, entry.tag, only=True)
        if have != rows:
            shown = f"{entry.namespace}.{entry.tag}"
            report.add(Difference("row count", shown, str(rows), "(missing)" if have is None else str(have)))
        report.rows_checked += rows


def verify_archive(
    tools: ClientTools, archive: Archive, target_url: str, *, jobs: int = 4, objects: bool = True
) -> ArchiveVerifyReport:
    """Check the target against *archive* (see the module's doc).

    :param objects: also the table of contents' objects, sequences and large objects (not only rows).
    """
    started = time.monotonic()
    target = parse_url(target_url, "target")
    selection = select_entries(archive)
    report = ArchiveVerifyReport(archive=archive.display)
    with connect(target, autocommit=True) as conn, pg_errors("target", target):
        if objects:
            _check_objects(conn, selection, report)
            _check_values(conn, selection, archive, report)
    tables = [t.entry for t in selection.tables]
    with schema_workdir() as workdir, ThreadPoolExecutor(max(1, jobs)) as pool:
        counted = list(pool.map(lambda e: count_archive_rows(tools, archive, e, workdir), tables))
    rows_of = {e.dump_id: rows for e, rows in zip(tables, counted, strict=True)}
    with connect(target, autocommit=True) as conn, pg_errors("target", target):
        _check_rows(conn, selection, rows_of, report)
    report.tables_checked = len(tables)
    report.seconds = time.monotonic() - started
    return report


def verify_dump(
    dump: str, target_url: str, *, jobs: int = 4, progress: ProgressSink | None = None, download_dir: Path | None = None
) -> ArchiveVerifyReport:
    """``ferry pg verify --from-dump``: the archive at *dump* (a file, or a URL downloaded first) against the target."""
    tools, archive, _ = open_dump(dump, progress or PlainProgress(), download_dir)
    return verify_archive(tools, archive, target_url, jobs=jobs)
