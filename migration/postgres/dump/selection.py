"""What of an archive is restored, and at which step.

The steps are the live copy's: pre-data (with the resume state, in one transaction), the data by
parts (each TABLE DATA entry's rows; each group of large objects), each loaded table's primary key,
unique and exclusion constraints and indexes as soon as it is in, the sequences' values, then the
rest of post-data (foreign keys, triggers, policies, partition index attachments, materialized
views' ``REFRESH``), entry by entry.

Entries of section "none" (``COMMENT``, ``ACL``, ``SECURITY LABEL``) belong where they stand in the
table of contents, after the object they are about, as pg_restore places them (its ``curSection``):
a comment on a table or a column with pre-data, one on an index, a constraint or a trigger with
post-data, one on a large object (in the data section) with post-data too, after the objects.

Left out, as the live copy leaves them on the source: the platform's schemas (Heroku's ``_heroku``),
ferry's own (the resume state, the follow's record, change capture's, found by its mark), their
triggers and event triggers; ``COMMENT ON EXTENSION`` (a managed target refuses it to all but a
superuser); subscriptions and security labels (the live copy's pg_dump leaves them out too). Owners
and grants are dropped by pg_restore (``--no-owner --no-acl``); ``--owner`` gives everything to a role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from psycopg import sql

from migration.postgres.copy.platform import PLATFORM_SCHEMAS, LeftBehind, skip_entry
from migration.postgres.dump.archive import Archive, ArchiveEntry, archive_error
from migration.postgres.footprint import CAPTURE_MARK, FERRY_SCHEMAS

__all__ = [
    "LargeObjectGroup", "Selection", "TableLoad", "large_object_oids", "placed_sections", "qualified", "quote_name", "select_entries",
    "split_qualified",
]  # fmt: skip

_NEVER = ("SUBSCRIPTION", "SUBSCRIPTION TABLE", "SECURITY LABEL", "DATABASE", "DATABASE PROPERTIES")
_EARLY = ("CONSTRAINT", "INDEX")
_LO_CREATE = re.compile(r"lo_create\('?(\d+)'?\)")
_OID_LINE = re.compile(r"^(\d+)$", re.M)
_FUNCTION_IN = r"(?:EXECUTE (?:FUNCTION|PROCEDURE)) {schema}\."


@dataclass
class TableLoad:
    """One TABLE DATA entry and what is built on its table once it is loaded.

    :param name: the entry's table (quoted as pg_dump quotes names).
    :param copy_into: the table its COPY fills, as written there: *name*, or the partition root that
        routes the rows (``--load-via-partition-root``, or pg_dump's own choice for a partition hashed
        on an enum): several entries then fill the same partitions.
    :param truncate: the COPY fills the entry's own table: truncated first, loaded with ``FREEZE``.
        Through a root, neither (the partitions hold other entries' rows): a resume never loads an
        entry twice because the rows and the entry's marker commit together.
    """

    entry: ArchiveEntry
    name: str
    copy_into: str
    truncate: bool
    constraints: list[ArchiveEntry] = field(default_factory=list)
    indexes: list[ArchiveEntry] = field(default_factory=list)

    @property
    def key(self) -> str:
        """Its done marker: one per entry (its dump id), whichever table its COPY names."""
        return f"{self.name}#{self.entry.dump_id}"


@dataclass
class LargeObjectGroup:
    """The large objects of one ``BLOBS`` entry, and (pg_dump 17 and later) the ``BLOB METADATA`` entry
    that creates them (before 17 each has a ``BLOB`` entry of its own, in pre-data)."""

    data: ArchiveEntry
    metadata: ArchiveEntry | None

    @property
    def key(self) -> str:
        return f"large-objects#{self.data.dump_id}"

    @property
    def entries(self) -> list[ArchiveEntry]:
        return [e for e in (self.metadata, self.data) if e is not None]


@dataclass
class Selection:
    pre_data: list[ArchiveEntry]
    tables: list[TableLoad]
    large_objects: list[LargeObjectGroup]
    sequences: list[ArchiveEntry]
    post_data: list[ArchiveEntry]
    #: Each left out entry's description, for one note line.
    left_out: list[str] = field(default_factory=list)
    large_object_count: int = 0

    @property
    def extensions(self) -> set[str]:
        return {e.tag for e in self.pre_data if e.desc == "EXTENSION"} - {"plpgsql"}

    @property
    def materialized_views(self) -> int:
        return sum(1 for e in self.post_data if e.desc == "MATERIALIZED VIEW DATA")


def large_object_oids(entries: list[ArchiveEntry]) -> set[int]:
    """The large objects the entries create: one ``BLOB`` entry each (before pg_dump 17), or a ``BLOB
    METADATA`` entry per group, its definition listing their oids (one a line, or as ``lo_create`` calls)."""
    oids = {int(e.tag) for e in entries if e.desc == "BLOB" and e.tag.isdigit()}
    for entry in entries:
        if entry.desc == "BLOB METADATA":
            oids |= {int(o) for o in _OID_LINE.findall(entry.defn) + _LO_CREATE.findall(entry.defn)}
    return oids


def split_qualified(text: str) -> tuple[str, str] | None:
    """``schema.name`` as pg_dump writes it (each part quoted when it must be) → the two names."""
    names: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == '"':
            j, part = i + 1, ""
            while j < len(text):
                if text[j] == '"' and text[j + 1 : j + 2] == '"':
                    part, j = part + '"', j + 2
                elif text[j] == '"':
                    break
                else:
                    part, j = part + text[j], j + 1
            names.append(part)
            i = j + 1
        else:
            j = i
            while j < len(text) and text[j] != ".":
                j += 1
            names.append(text[i:j])
            i = j
        if i < len(text) and text[i] == ".":
            i += 1
        elif i < len(text):
            return None
    return (names[0], names[1]) if len(names) == 2 else None


_IDENT = r'(?:"(?:[^"]|"")+"|[a-z_][a-z0-9_]*)'  # as pg_dump's fmtId writes a name
_COPY = re.compile(rf"^COPY\s+({_IDENT}\.{_IDENT})(?:\s+\({_IDENT}(?:,\s*{_IDENT})*\))?\s+FROM\s+stdin;\s*$")


def qualified(text: str) -> sql.Identifier:
    """``schema.name`` as pg_dump writes it, as an identifier to compose SQL with (never the text itself)."""
    parts = split_qualified(text)
    if parts is None:
        raise ValueError(f"not a qualified name: {text!r}")
    return sql.Identifier(*parts)


def _copy_target(entry: ArchiveEntry) -> str | None:
    """The table the entry's ``COPY … FROM stdin;`` fills, as written there (``None``: not such a statement,
    only that is ever run: a table, its columns, nothing after)."""
    match = _COPY.match(entry.copy_stmt)
    return match.group(1) if match else None


def quote_name(name: str) -> str:
    """*name* quoted as pg_dump quotes it when it must be (its keywords aside)."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def placed_sections(archive: Archive) -> dict[int, str]:
    """Each entry's section as pg_restore takes it: one of section "none" is in the section before it."""
    placed: dict[int, str] = {}
    current = "pre-data"
    for entry in archive.entries:
        if entry.section != "none":
            current = entry.section
        placed[entry.dump_id] = current
    return placed


def _left_schemas(archive: Archive) -> set[str]:
    captures = {
        e.tag.removeprefix("SCHEMA ").strip('"')
        for e in archive.entries
        if e.desc == "COMMENT" and e.tag.startswith("SCHEMA ") and CAPTURE_MARK in e.defn
    }
    return {*PLATFORM_SCHEMAS, *FERRY_SCHEMAS, *captures}


def _left_out(entry: ArchiveEntry, schemas: set[str]) -> bool:
    if entry.desc in _NEVER or not entry.listed:
        return True
    if entry.namespace in schemas or (entry.desc == "SCHEMA" and entry.tag in schemas):
        return True
    if entry.desc in ("COMMENT", "ACL") and entry.tag.startswith("SCHEMA ") and entry.tag[7:].strip('"') in schemas:
        return True
    if entry.desc in ("TRIGGER", "EVENT TRIGGER"):
        for schema in schemas:
            quoted = re.escape(schema) if re.fullmatch(r"[a-z_][a-z0-9_$]*", schema) else re.escape(f'"{schema}"')
            if re.search(_FUNCTION_IN.format(schema=quoted), entry.defn):
                return True
    return skip_entry(entry.toc, LeftBehind())


def select_entries(archive: Archive) -> Selection:
    """Sort the archive's entries into the restore's steps."""
    schemas = _left_schemas(archive)
    section = placed_sections(archive)
    kept: list[ArchiveEntry] = []
    left_out: list[str] = []
    for entry in archive.entries:
        if _left_out(entry, schemas):
            if entry.listed and entry.desc not in ("DATABASE", "COMMENT"):
                left_out.append(f"{entry.desc} {entry.namespace}.{entry.tag}".replace(" -.", " ").replace(" .", " "))
        else:
            kept.append(entry)
    by_id = {e.dump_id: e for e in kept}
    tables: list[TableLoad] = []
    table_of: dict[int, TableLoad] = {}
    for entry in kept:
        if entry.desc != "TABLE DATA":
            continue
        written = _copy_target(entry)
        parts = split_qualified(written) if written else None
        if written is None or parts is None:
            raise archive_error(
                f"{archive.path}: the rows of {entry.namespace}.{entry.tag} come with a COPY statement ferry does not "
                f"run (not COPY schema.table (columns) FROM stdin;): {entry.copy_stmt.strip()[:200]!r}"
            )
        own = [d for d in entry.dependencies if d in by_id and by_id[d].desc == "TABLE"]
        if not own:
            raise archive_error(
                f"{archive.path} holds the rows of {written} but not its table (made with pg_dump --data-only?): "
                "ferry restores a whole database, schema and rows"
            )
        direct = parts == (entry.namespace, entry.tag)
        name = written if direct else f"{quote_name(entry.namespace)}.{quote_name(entry.tag)}"
        load = TableLoad(entry, name, written, direct)
        tables.append(load)
        if load.truncate:
            table_of[own[0]] = load
    post_ids = {e.dump_id for e in kept if section[e.dump_id] == "post-data"}
    early: set[int] = set()
    for entry in kept:
        if section[entry.dump_id] != "post-data" or entry.desc not in _EARLY:
            continue
        owners = {d for d in entry.dependencies if d in table_of}
        if len(owners) != 1 or any(d in post_ids for d in entry.dependencies):
            continue  # on a table without rows here (a partitioned one), or after another post-data entry
        load = table_of[owners.pop()]
        (load.constraints if entry.desc == "CONSTRAINT" else load.indexes).append(entry)
        early.add(entry.dump_id)
    metadata = {e.tag: e for e in kept if e.desc == "BLOB METADATA"}
    groups = [LargeObjectGroup(e, metadata.get(e.tag)) for e in kept if e.desc == "BLOBS"]
    lo_count = len(large_object_oids(kept))
    # After the data: post-data, and what is about an object loaded with the data (a comment on a large object).
    late = [
        e for e in kept if section[e.dump_id] == "post-data" or (e.section == "none" and section[e.dump_id] == "data")
    ]
    return Selection(
        pre_data=[e for e in kept if section[e.dump_id] == "pre-data"],
        tables=sorted(tables, key=lambda t: (-t.entry.data_bytes, t.name)),
        large_objects=groups,
        sequences=[e for e in kept if e.desc == "SEQUENCE SET"],
        post_data=[e for e in late if e.dump_id not in early],
        left_out=left_out,
        large_object_count=lo_count,
    )
