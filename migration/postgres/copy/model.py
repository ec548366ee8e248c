"""What a copy takes and what it gives back: the public value types of ``ferry pg copy``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from migration.postgres.copy.schema import DumpFilters
from migration.postgres.copy.snapshot import SourceSnapshot

__all__ = ["CopyOptions", "CopyResult", "HelpResult", "TableResult"]


@dataclass(frozen=True)
class CopyOptions:
    """Everything ``ferry pg copy`` takes.

    :param jobs: parallel COPY streams.
    :param index_jobs: parallel index builds (defaults to *jobs*).
    :param owner: role that owns every object on the target; ``None`` keeps the
        connecting user as owner (source owners and grants are never copied).
    :param maintenance_work_mem: for index builds; ``None`` keeps the server's setting
        (bigger is not faster: bench/RESULTS.md).
    :param split_bytes: tables bigger than this are copied in ranges by several workers;
        ``None`` decides per table (see :func:`migration.postgres.copy.plan.split_count`), 0 never splits.
    :param shared: other tasks may help (:func:`migration.postgres.copy.helper.help_copy`): the plan and
        the snapshot are recorded on the target for them, and every part is claimed there before it is
        copied (see :mod:`migration.postgres.copy.share`).
    """

    source_url: str
    target_url: str
    jobs: int = 4
    index_jobs: int | None = None
    filters: DumpFilters = field(default_factory=DumpFilters)
    owner: str | None = None
    clean: bool = False
    resume: bool = False
    create_database: bool = False
    split_bytes: int | None = None
    maintenance_work_mem: str | None = None
    shared: bool = False
    #: A shared copy's helpers started beside it: the leader waits (at most :attr:`helpers_wait_seconds`) until
    #: they have joined before it claims a part, so a copy that is quick next to a task's start is shared too.
    helpers: int = 0
    helpers_wait_seconds: float = 60.0


@dataclass
class TableResult:
    """One table's copy: rows and COPY bytes moved, copy and index seconds."""

    name: str
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    index_seconds: float = 0.0
    parts: int = 0
    resumed_parts: int = 0
    #: Parts a helper copied (a shared copy); their rows and bytes are counted in too.
    helped_parts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "index_seconds": round(self.index_seconds, 3),
            "parts": self.parts,
            "resumed_parts": self.resumed_parts,
            "helped_parts": self.helped_parts,
        }


@dataclass
class CopyResult:
    """What ``copy_database`` did; ``to_json()`` is the ``--json`` summary.

    :param not_valid_foreign_keys: ``(qualified table, constraint name)`` of the foreign keys a
        resumed copy added ``NOT VALID``: rows copied before and after the resume disagree (see
        :mod:`migration.postgres.copy.resume`); empty for a copy never interrupted.
    """

    source: str
    target: str
    snapshot: SourceSnapshot
    resumed: bool
    tables: list[TableResult] = field(default_factory=list)
    large_objects: int = 0
    sequences: int = 0
    materialized_views: int = 0
    not_valid_foreign_keys: list[tuple[str, str]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "snapshot": self.snapshot.as_dict(),
            "consistent": not self.resumed,
            "resumed": self.resumed,
            "seconds": round(self.seconds, 3),
            "rows": self.rows,
            "bytes": self.bytes,
            "large_objects": self.large_objects,
            "sequences": self.sequences,
            "materialized_views": self.materialized_views,
            "not_valid_foreign_keys": [{"table": t, "name": n} for t, n in self.not_valid_foreign_keys],
            "phases": {k: round(v, 3) for k, v in self.phases.items()},
            "tables": [t.to_json() for t in self.tables],
        }


@dataclass
class HelpResult:
    """What one helper of a shared copy copied (:func:`~migration.postgres.copy.helper.help_copy`).

    :param keys: the parts it copied and marked done, in the order it finished them.
    """

    keys: list[str] = field(default_factory=list)
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def parts(self) -> int:
        return len(self.keys)
