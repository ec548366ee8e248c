"""Schema phase: one schema-only pg_dump in the snapshot, restored by section.

Pre-data (types, tables, functions, …) is restored before any row moves. The
post-data entries that ferry builds itself, table by table, are taken out of the list
that pg_restore applies at the end (foreign keys, triggers, policies, attachments…).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from migration.postgres.conninfo import PgEndpoint
from migration.postgres.copy.tools import ClientTools

__all__ = ["DumpFilters", "SchemaDump", "TocEntry", "dump_schema"]

PG_CLASS = 1259
PG_CONSTRAINT = 2606
_TOC_LINE = re.compile(r"^(?P<dump_id>\d+); (?P<catalog>\d+) (?P<oid>\d+) (?P<rest>.*)$")
_TWO_WORD_DESCS = (
    "TABLE DATA",
    "TABLE ATTACH",
    "INDEX ATTACH",
    "FK CONSTRAINT",
    "CHECK CONSTRAINT",
    "ROW SECURITY",
    "MATERIALIZED VIEW DATA",
    "MATERIALIZED VIEW",
    "EVENT TRIGGER",
    "FOREIGN TABLE",
    "SEQUENCE OWNED BY",
    "SEQUENCE SET",
    "DEFAULT ACL",
    "SHELL TYPE",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "ACCESS METHOD",
    "PROCEDURAL LANGUAGE",
    "FOREIGN DATA WRAPPER",
    "USER MAPPING",
    "PUBLICATION TABLE",
    "SECURITY LABEL",
    "LARGE OBJECT",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH PARSER",
    "TEXT SEARCH TEMPLATE",
)


@dataclass(frozen=True)
class TocEntry:
    """One line of ``pg_restore --list``."""

    line: str
    dump_id: int
    catalog: int
    oid: int
    desc: str
    rest: str

    @classmethod
    def parse(cls, line: str) -> TocEntry | None:
        match = _TOC_LINE.match(line)
        if not match:
            return None
        rest = match["rest"]
        desc = next((d for d in _TWO_WORD_DESCS if rest.startswith(d + " ")), rest.split(" ", 1)[0])
        return cls(
            line, int(match["dump_id"]), int(match["catalog"]), int(match["oid"]), desc, rest[len(desc) :].strip()
        )


@dataclass(frozen=True)
class DumpFilters:
    """Which objects to copy, in pg_dump's pattern syntax."""

    schemas: tuple[str, ...] = ()
    exclude_schemas: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()
    exclude_tables: tuple[str, ...] = ()

    @property
    def chosen(self) -> bool:
        """Whether the user chose what to copy (a filtered copy must bring what it needs)."""
        return bool(self.schemas or self.exclude_schemas or self.tables or self.exclude_tables)

    def pg_dump_args(self) -> list[str]:
        args: list[str] = []
        for flag, values in (
            ("-n", self.schemas),
            ("-N", self.exclude_schemas),
            ("-t", self.tables),
            ("-T", self.exclude_tables),
        ):
            for value in values:
                args += [flag, value]
        return args


@dataclass
class SchemaDump:
    """The schema-only archive and its table of contents."""

    path: Path
    pre_data: list[TocEntry]
    post_data: list[TocEntry]

    def oids(self, desc: str, entries: Iterable[TocEntry] | None = None) -> list[int]:
        return [e.oid for e in (entries if entries is not None else self.pre_data) if e.desc == desc]


def _list(tools: ClientTools, path: Path, section: str, endpoint: PgEndpoint) -> list[TocEntry]:
    out = tools.run([tools.pg_restore, "--list", f"--section={section}", path], endpoint, "pg_restore --list")
    return [e for e in (TocEntry.parse(line) for line in out.splitlines()) if e is not None]


def dump_schema(
    tools: ClientTools,
    source: PgEndpoint,
    snapshot_id: str,
    filters: DumpFilters,
    workdir: Path,
    name: str = "schema",
) -> SchemaDump:
    """Dump the source's schema as of *snapshot_id* into *workdir*.

    Owners, grants, tablespaces, security labels and subscriptions are left out here;
    ``--owner`` is applied at restore time.
    """
    path = workdir / f"{name}.dump"
    tools.run(
        [
            tools.pg_dump,
            "--format=custom",
            "--schema-only",
            f"--snapshot={snapshot_id}",
            "--no-tablespaces",
            "--no-security-labels",
            "--no-subscriptions",
            "--file",
            path,
            *filters.pg_dump_args(),
            source.dbname,
        ],
        source,
        "pg_dump --schema-only",
    )
    return SchemaDump(path, _list(tools, path, "pre-data", source), _list(tools, path, "post-data", source))
