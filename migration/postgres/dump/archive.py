"""A ``pg_dump -Fc`` archive, read and checked before anything is written to the target.

The custom format is a header, a table of contents (one entry per object: its id, catalog, oid, tag,
type, section, SQL, ``COPY`` statement, schema, dependencies and where its data starts), then the data
blocks: each a type byte, the entry's id, and length-prefixed chunks ending with an empty one. Read
here in Python (``pg_backup_archiver.c``'s ``ReadHead``/``ReadToc``, ``pg_backup_custom.c``'s blocks),
so that what a restore would only find halfway is found first: not a file, not a custom-format
archive (a plain SQL dump, a tar or directory-format one), a table of contents that ends early, data
blocks cut short (a truncated download). The walk over the blocks seeks past their chunks: it reads
a few bytes per chunk, never decompresses. It also says how big each entry's data is, which orders
the load (biggest first).

``pg_restore --list`` is run as well: its lines are the ``-L`` lists the restore hands back to it,
and an archive it cannot read is refused here, with its reason.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from migration.errors import PreconditionError, ToolError
from migration.postgres.copy.schema import TocEntry
from migration.postgres.copy.tools import ClientTools

__all__ = ["Archive", "ArchiveEntry", "archive_error", "read_archive"]

_MAGIC = b"PGDMP"
_SECTIONS = {1: "none", 2: "pre-data", 3: "data", 4: "post-data"}
_COMPRESSION = {0: "none", 1: "gzip", 2: "lz4", 3: "zstd"}
# ReadOffset's flags: where an entry's data block starts.
_OFFSET_NOT_SET, _OFFSET_SET, _OFFSET_NO_DATA = 1, 2, 3
# Data block types (pg_backup_custom.c).
_BLK_DATA, _BLK_BLOBS = 1, 3
_OLDEST, _NEWEST = (1, 12), (1, 16)  # pg_dump 9.x's format (separate BLOB entries) up to 17's and 18's


def archive_error(message: str) -> PreconditionError:
    """The ``--from-dump`` input is not a readable ``pg_dump -Fc`` archive (always about the source)."""
    return PreconditionError(message, side="source")


@dataclass(frozen=True)
class ArchiveEntry:
    """One entry of the table of contents.

    :param line: its line of ``pg_restore --list`` (what a ``-L`` list holds).
    :param data_bytes: the size of its data block in the archive (compressed), 0 when it has none.
    """

    dump_id: int
    catalog: int
    oid: int
    tag: str
    desc: str
    section: str
    defn: str
    copy_stmt: str
    namespace: str
    dependencies: tuple[int, ...]
    has_data: bool
    line: str = ""
    data_bytes: int = 0

    @property
    def listed(self) -> bool:
        """pg_restore lists it (it leaves out the entries it turns into every script's header)."""
        return bool(self.line)

    @property
    def toc_key(self) -> str:
        """Its done marker's name, as the live copy names an entry (:attr:`EntrySQL.key`)."""
        toc = self.toc
        return f"{toc.desc} {toc.rest}"

    @property
    def toc(self) -> TocEntry:
        """As the live copy's schema code names entries (its restore scripts and markers)."""
        parsed = TocEntry.parse(self.line)
        assert parsed is not None, self.line
        return parsed


@dataclass
class Archive:
    """A checked archive: where it is, what made it, its entries."""

    path: Path
    size: int
    version: str
    compression: str
    dbname: str
    server_version: str
    dump_version: str
    #: A digest of its header and table of contents: the same archive (a resume checks it) wherever it lies.
    identity: str
    entries: list[ArchiveEntry] = field(default_factory=list)

    @property
    def display(self) -> str:
        """How the resume state and the messages name it (no path: a download's file may move)."""
        return f"archive of {self.dbname} ({self.identity[:16]})"

    def by_desc(self, *descs: str) -> list[ArchiveEntry]:
        return [e for e in self.entries if e.desc in descs]

    def by_id(self) -> dict[int, ArchiveEntry]:
        return {e.dump_id: e for e in self.entries}


class _Truncated(Exception):
    pass


class _Reader:
    """``ReadInt``/``ReadStr``/``ReadOffset`` over a file, for one archive's int and offset sizes."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.int_size = 4
        self.off_size = 8

    def read(self, n: int) -> bytes:
        data = self.handle.read(n)
        if len(data) != n:
            raise _Truncated
        return data

    def byte(self) -> int:
        return self.read(1)[0]

    def integer(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.read(self.int_size), "little")
        return -value if sign else value

    def string(self) -> str | None:
        length = self.integer()
        if length < 0:
            return None
        return self.read(length).decode("utf-8", errors="replace")

    def offset(self) -> tuple[int, int]:
        flag = self.byte()
        return flag, int.from_bytes(self.read(self.off_size), "little")


def _kind_of(head: bytes) -> str | None:
    """What a file that is not a custom-format archive is, for the error message (``None``: unknown)."""
    if not head:
        return "empty"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "a tar-format dump (pg_dump -Ft)"
    if head.startswith((b"--", b"SET ", b"\\restrict", b"CREATE ")):
        return "a plain SQL dump (pg_dump -Fp: run it with psql)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip file (a compressed plain SQL dump? gunzip it and run it with psql)"
    return None


def _open_checked(path: Path) -> BinaryIO:
    if path.is_dir():
        if (path / "toc.dat").exists():
            raise archive_error(
                f"{path} is a directory-format dump (pg_dump -Fd); ferry restores a custom-format archive "
                "(pg_dump -Fc, what PG Backups gives)"
            )
        raise archive_error(f"{path} is a directory, not a pg_dump -Fc archive")
    if not path.exists():
        raise archive_error(f"no such file: {path}")
    if not path.is_file():
        raise archive_error(f"{path} is not a regular file")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise archive_error(f"cannot read {path}: {exc.strerror}") from None


def _read_header(reader: _Reader, path: Path) -> dict[str, str]:
    head = reader.handle.read(512)
    if not head.startswith(_MAGIC):
        kind = _kind_of(head)
        raise archive_error(
            f"{path} is {kind}, not a pg_dump -Fc archive" if kind else f"{path} is not a pg_dump -Fc archive"
        )
    reader.handle.seek(len(_MAGIC))
    major, minor, _rev = reader.byte(), reader.byte(), reader.byte()
    reader.int_size, reader.off_size = reader.byte(), reader.byte()
    fmt = reader.byte()
    if fmt != 1:
        if fmt in (3, 5):  # a directory-format dump's toc.dat (a tar-format one does not begin with the magic)
            raise archive_error(
                f"{path} is the table of contents of a directory-format dump (pg_dump -Fd); "
                "ferry restores pg_dump -Fc archives"
            )
        raise archive_error(f"{path} is a pg_dump archive of format {fmt}; ferry restores pg_dump -Fc archives")
    if (major, minor) < _OLDEST or major != 1:
        raise archive_error(f"{path}: archive format {major}.{minor} is older than ferry reads (pg_dump 9.2 and later)")
    if (major, minor) > _NEWEST:
        raise archive_error(f"{path}: archive format {major}.{minor} is newer than ferry reads (up to {_NEWEST[1]})")
    if minor >= 15:
        compression = _COMPRESSION.get(reader.byte(), "unknown")
    else:
        level = reader.integer()
        compression = "none" if level == 0 else "gzip"
    for _ in range(7):  # sec, min, hour, mday, mon, year, isdst
        reader.integer()
    dbname = reader.string() or ""
    server_version = reader.string() or ""
    dump_version = reader.string() or ""
    return {
        "version": f"{major}.{minor}",
        "minor": str(minor),
        "compression": compression,
        "dbname": dbname,
        "server_version": server_version,
        "dump_version": dump_version,
    }


def _read_entry(reader: _Reader, minor: int) -> tuple[ArchiveEntry, int, int]:
    """One entry, its data offset flag and offset."""
    dump_id = reader.integer()
    had_dumper = reader.integer()
    catalog = int(reader.string() or 0)
    oid = int(reader.string() or 0)
    tag = reader.string() or ""
    desc = reader.string() or ""
    section = _SECTIONS.get(reader.integer(), "none")
    defn = reader.string() or ""
    reader.string()  # the DROP statement
    copy_stmt = reader.string() or ""
    namespace = reader.string() or ""
    reader.string()  # tablespace
    if minor >= 14:
        reader.string()  # table access method
    if minor >= 16:
        reader.integer()  # relkind
    reader.string()  # owner
    reader.string()  # "with oids" (always false)
    deps: list[int] = []
    while (dep := reader.string()) is not None:
        deps.append(int(dep))
    flag, offset = reader.offset()
    entry = ArchiveEntry(
        dump_id, catalog, oid, tag, desc, section, defn, copy_stmt, namespace, tuple(deps),
        has_data=bool(had_dumper) and flag != _OFFSET_NO_DATA,
    )  # fmt: skip
    return entry, flag, offset


def _skip_chunks(reader: _Reader, size: int) -> None:
    """Past one data stream's chunks (each ``int`` length then bytes; an empty one ends it)."""
    handle = reader.handle
    while True:
        length = reader.integer()
        if length == 0:
            return
        if length < 0:
            raise _Truncated
        end = handle.tell() + length
        if end > size:
            raise _Truncated
        handle.seek(end)


def _skip_block(reader: _Reader, size: int) -> int:
    """Past one data block from its start; returns its entry's dump id."""
    kind = reader.byte()
    dump_id = reader.integer()
    if kind == _BLK_DATA:
        _skip_chunks(reader, size)
    elif kind == _BLK_BLOBS:
        while reader.integer() != 0:  # each large object: its oid, then its chunks; oid 0 ends them
            _skip_chunks(reader, size)
    else:
        raise _Truncated
    return dump_id


def _walk_data(
    reader: _Reader, first: int, size: int, offsets: dict[int, int], expected: list[int]
) -> tuple[dict[int, int], int | None]:
    """Each data block's size, by dump id, and the entry whose block is cut short (``None``: none is).

    With every block's offset recorded (an archive written to a file), only the last block is walked
    (its chunks): a cut-short file is cut in its last block. Without offsets (an archive written to a
    pipe, or to a redirected stdout) the blocks are walked in order until every entry's is found: what
    follows them is not read (pg_dump 18 appends its table of contents again there, with the offsets,
    when its stdout is a file it cannot rewrite in place; pg_restore does not read it either).

    :param expected: the entries with data, in archive order (the order pg_dump writes their blocks).
    """
    sizes: dict[int, int] = {}
    if offsets and all(o > 0 for o in offsets.values()):
        ordered = sorted(offsets.items(), key=lambda item: item[1])
        for i, (dump_id, start) in enumerate(ordered):
            following = ordered[i + 1][1] if i + 1 < len(ordered) else None
            try:
                reader.handle.seek(start)
                if following is None:
                    if _skip_block(reader, size) != dump_id:
                        return sizes, dump_id
                    sizes[dump_id] = reader.handle.tell() - start
                else:
                    reader.byte()
                    if reader.integer() != dump_id or following > size:
                        return sizes, dump_id
                    sizes[dump_id] = following - start
            except _Truncated:
                return sizes, dump_id
        return sizes, None
    reader.handle.seek(first)
    position = first
    wanted = set(expected)
    while not wanted <= sizes.keys():
        try:
            dump_id = _skip_block(reader, size)
        except _Truncated:
            return sizes, next(d for d in expected if d not in sizes)
        sizes[dump_id] = reader.handle.tell() - position
        position = reader.handle.tell()
    return sizes, None


def read_archive(path: Path, tools: ClientTools) -> Archive:
    """Read and check the archive at *path*.

    :raises PreconditionError: not a readable, complete ``pg_dump -Fc`` archive.
    :raises ToolError: the pg_restore found cannot read it (older than the pg_dump that wrote it).
    """
    with _open_checked(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        reader = _Reader(handle)
        try:
            header = _read_header(reader, path)
            minor = int(header["minor"])
            count = reader.integer()
            if count < 0 or count > 10_000_000:
                raise _Truncated
            raw: list[tuple[ArchiveEntry, int, int]] = [_read_entry(reader, minor) for _ in range(count)]
        except _Truncated:
            raise archive_error(f"{path} is truncated or damaged: its table of contents ends early") from None
        except ValueError:
            raise archive_error(f"{path} is damaged: its table of contents does not parse") from None
        first_data = handle.tell()
        handle.seek(0)
        identity = hashlib.sha256(struct.pack("<q", size) + handle.read(first_data)).hexdigest()
        with_data = {e.dump_id: (flag, offset) for e, flag, offset in raw if e.has_data}
        offsets = {d: o for d, (flag, o) in with_data.items() if flag == _OFFSET_SET}
        if len(offsets) != len(with_data):
            offsets = {}
        sizes, cut = _walk_data(reader, first_data, size, offsets, list(with_data))
        if cut is not None:
            names = {e.dump_id: f"{e.desc} {e.namespace}.{e.tag}".replace(" .", " ") for e, _, _ in raw}
            raise archive_error(
                f"{path} is truncated or damaged: its data blocks end early (in or before the data of {names[cut]})"
            )
    lines = _listing(tools, path)
    entries: list[ArchiveEntry] = []
    for entry, _, _ in raw:
        # pg_restore lists every entry but those it writes into every script's header (ENCODING, …).
        line = lines.get(entry.dump_id, "")
        entries.append(_with(entry, line, sizes.get(entry.dump_id, 0)))
    return Archive(
        path, size, header["version"], header["compression"], header["dbname"], header["server_version"],
        header["dump_version"], identity, entries,
    )  # fmt: skip


def _with(entry: ArchiveEntry, line: str, data_bytes: int) -> ArchiveEntry:
    return ArchiveEntry(
        entry.dump_id, entry.catalog, entry.oid, entry.tag, entry.desc, entry.section, entry.defn, entry.copy_stmt,
        entry.namespace, entry.dependencies, entry.has_data, line, data_bytes,
    )  # fmt: skip


def _listing(tools: ClientTools, path: Path) -> dict[int, str]:
    """``pg_restore --list``, by dump id: the archive as pg_restore reads it."""
    try:
        out = tools.run([tools.pg_restore, "--list", path], None, "pg_restore --list")
    except ToolError as exc:
        raise ToolError(f"{exc.message} ({path})", side="source") from exc
    lines: dict[int, str] = {}
    for line in out.splitlines():
        parsed = TocEntry.parse(line)
        if parsed is not None:
            lines[parsed.dump_id] = line
    return lines  # none at all: an archive of an empty database (pg_restore restores nothing from it)
