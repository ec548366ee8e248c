"""What of an archive is restored, and at which step.

The steps are the live copy's: pre-data (with the resume state, in one transaction), the data by
parts (each table's rows; each group of large objects), each loaded table's primary key, unique and
exclusion constraints and indexes as soon as it is in, the sequences' values, then the rest of
post-data (foreign keys, triggers, policies, partition index attachments, materialized views'
``REFRESH``), entry by entry.

Left out, as the live copy leaves them on the source: the platform's schemas (Heroku's ``_heroku``),
ferry's own (the resume state, the follow's record, change capture's, found by its mark), their
triggers and event triggers; ``COMMENT ON EXTENSION`` (a managed target refuses it to all but a
superuser); subscriptions and security labels (the live copy's pg_dump leaves them out too). Owners
and grants are dropped by pg_restore (``--no-owner --no-acl``); ``--owner`` gives everything to a role.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from migration.postgres.copy.platform import PLATFORM_SCHEMAS, LeftBehind, skip_entry
from migration.postgres.dump.archive import Archive, ArchiveEntry, archive_error
from migration.postgres.footprint import CAPTURE_MARK, FERRY_SCHEMAS

__all__ = ["LargeObjectGroup", "Selection", "TableLoad", "large_object_oids", "select_entries", "split_qualified"]

_NEVER = ("SUBSCRIPTION", "SUBSCRIPTION TABLE", "SECURITY LABEL", "DATABASE", "DATABASE PROPERTIES")
_EARLY = ("CONSTRAINT", "INDEX")
_LO_CREATE = re.compile(r"lo_create\('?(\d+)'?\)")
_OID_LINE = re.compile(r"^(\d+)$", re.M)
_FUNCTION_IN = r"(?:EXECUTE (?:FUNCTION|PROCEDURE)) {schema}\."


@dataclass
class TableLoad:
    """One TABLE DATA entry and what is built on its table once it is loaded.

    :param name: the table, as the entry's COPY names it (quoted as needed).
    :param truncate: the table is the one its COPY fills (not a partition root routing the rows of
        ``--load-via-partition-root``): truncated first, loaded with ``FREEZE``.
    """

    entry: ArchiveEntry
    name: str
    truncate: bool
    constraints: list[ArchiveEntry] = field(default_factory=list)
    indexes: list[ArchiveEntry] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.name}#0"


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


def _copy_target(entry: ArchiveEntry) -> str | None:
    """The table the entry's ``COPY … FROM stdin;`` fills, as written there."""
    match = re.match(
        r"^COPY\s+((?:\"(?:[^\"]|\"\")*\"|[^\s.(\"]+)\.(?:\"(?:[^\"]|\"\")*\"|[^\s(\"]+))", entry.copy_stmt
    )
    return match.group(1) if match else None


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
            continue
        own = [d for d in entry.dependencies if d in by_id and by_id[d].desc == "TABLE"]
        if not own:
            raise archive_error(
                f"{archive.path} holds the rows of {written} but not its table (made with pg_dump --data-only?): "
                "ferry restores a whole database, schema and rows"
            )
        load = TableLoad(entry, written, parts == (entry.namespace, entry.tag))
        tables.append(load)
        if load.truncate and own:
            table_of[own[0]] = load
    post_ids = {e.dump_id for e in kept if e.section == "post-data"}
    early: set[int] = set()
    for entry in kept:
        if entry.section != "post-data" or entry.desc not in _EARLY:
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
    return Selection(
        pre_data=[e for e in kept if e.section == "pre-data"],
        tables=sorted(tables, key=lambda t: (-t.entry.data_bytes, t.name)),
        large_objects=groups,
        sequences=[e for e in kept if e.desc == "SEQUENCE SET"],
        post_data=[e for e in kept if e.section == "post-data" and e.dump_id not in early],
        left_out=left_out,
        large_object_count=lo_count,
    )
