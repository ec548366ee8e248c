"""How the PostgreSQL store moves its data: the interface of its strategies, and the simplest one.

:class:`CopyInFreeze` copies the whole database inside the freeze; :class:`~.postgres_capture.CaptureAndFollow`
copies while the app writes and follows the change log, so the freeze only drains it. The store
(:mod:`.postgres`) picks one from the stack file, once, and hands it the phases that differ; what
every strategy does alike (preflight, stopping and reopening the source's writes) stays in the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

from migration.errors import PreconditionError, ResumeError
from migration.postgres import (
    BackOrigin,
    CopyOptions,
    CopyResult,
    Witness,
    capture_errors,
    connect_source,
    connect_target,
    copy_database,
    passage_token,
    sync_sequences,
    target_is_empty,
    verify_databases,
    with_passage,
)
from migration.progress import ProgressSink
from migration.runbook.follower import FollowerStatus
from migration.runbook.state import StoreState
from migration.runbook.stores.base import ProgressFor, StoreRun, StoreVerify

__all__ = [
    "CopyInFreeze",
    "PostgresConfig",
    "PostgresRun",
    "PostgresSide",
    "PostgresState",
    "PostgresStrategy",
    "copy_resuming",
    "sync_sequences_between",
    "writable_to",
]


@dataclass(frozen=True)
class PostgresConfig:
    """The PostgreSQL section of a run: what the stack file (and the command line) say of it.

    :param capture: copy and follow while live (change capture), rather than copy inside the freeze.
    :param full_verify: checksum every row (``--verify full``), not only counts and boundaries.
    """

    moves: bool
    capture: bool
    jobs: int
    full_verify: bool
    catch_up_seconds: float
    app_role: str
    #: Other tasks help the copy (``--tasks N``: N-1 of them): its plan and snapshot are shared on the target.
    helpers: int = 0
    #: The app's variable the switch points at the target (``DATABASE_URL``, ``HEROKU_POSTGRESQL_ONYX_URL``).
    config_var: str = "DATABASE_URL"


@dataclass(frozen=True)
class PostgresSide:
    """One side of the PostgreSQL move.

    :param url: what ferry connects as (on a target the stack built: the database's owner).
    :param app_url: what the app's ``DATABASE_URL`` is set to when it moves here.
    """

    url: str = field(repr=False)
    app_url: str = field(repr=False)


@dataclass
class PostgresState(StoreState):
    """The PostgreSQL section of the run state, beyond what every store keeps."""

    #: Where the final sync must reach (change capture: the fence's marker entry).
    marker: int | None = None
    #: The live verify's position in the target's record of rewritten rows (``None``: none ran);
    #: the verify inside the freeze compares what was rewritten after it.
    verified_through: int | None = None
    #: Key ranges that still differed while live, as ``[table, label, condition]``.
    deferred_ranges: list[list[str]] = field(default_factory=list)
    #: Changes the final sync drained inside the freeze.
    drained: int | None = None
    #: What the source looked like as its writes stopped (change capture's witness, as JSON).
    witness: dict[str, Any] | None = None
    #: The salt of the follow back's passage through the old database's fence (no secret on its own).
    passage_salt: str | None = None
    #: Where the follow back begins (taken inside the freeze; recorded on the old database after the switch).
    back_origin: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        # Read from the state file: what the freeze and the verify will take apart is checked now.
        for entry in self.deferred_ranges:
            if len(entry) != 3:
                raise ValueError(f"deferred_ranges: {entry!r} is not [table, label, condition]")
        if self.witness is not None:
            try:
                Witness.from_json(self.witness)
            except (KeyError, TypeError, ValueError, AttributeError):
                raise ValueError("witness: not one a freeze took") from None
        if self.back_origin is not None:
            try:
                BackOrigin.from_json(self.back_origin)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError):
                raise ValueError("back_origin: not one a switch took") from None
        if self.passage_salt is not None and not re.fullmatch(r"[0-9a-f]{32}", self.passage_salt):
            raise ValueError("passage_salt: not one ferry made")


PostgresRun: TypeAlias = StoreRun[PostgresConfig, PostgresState, PostgresSide]


class PostgresStrategy:
    """The phases whose work depends on how the data moves. The defaults are what a copy inside the freeze needs."""

    def copy_live(self, run: PostgresRun) -> str:
        return ""

    def live_status(self, run: PostgresRun) -> FollowerStatus | None:
        return None

    def catch_up(self, run: PostgresRun) -> str:
        return ""

    def writes_stopped(self, run: PostgresRun) -> str:
        return ""

    def final_sync(self, run: PostgresRun, progress_for: ProgressFor) -> str:
        raise NotImplementedError

    def verify(self, run: PostgresRun) -> list[StoreVerify]:
        report = verify_databases(
            run.from_side.url,
            run.to_side.url,
            mode="full" if run.config.full_verify else "quick",
            jobs=run.config.jobs,
        )
        return [StoreVerify.of(run.name, report)]

    def prove_frozen(self, run: PostgresRun) -> list[StoreVerify]:
        return []

    def finish_target(self, run: PostgresRun) -> str:
        return ""

    def cleanup(self, run: PostgresRun) -> str:
        return ""

    def prepare_back(self, run: PostgresRun) -> str:
        return ""

    def begin_back(self, run: PostgresRun) -> str:
        return ""

    def follow_back(self, run: PostgresRun) -> str:
        return ""

    def close_old(self, run: PostgresRun) -> str:
        return ""

    def finish(self, run: PostgresRun) -> str:
        return ""


class CopyInFreeze(PostgresStrategy):
    """The whole database copied inside the freeze (``migration.capture: false``)."""

    def copy_live(self, run: PostgresRun) -> str:
        return "postgres: copied inside the freeze (capture is off)"

    def final_sync(self, run: PostgresRun, progress_for: ProgressFor) -> str:
        state = run.state
        resume, state.copy_started = state.copy_started, True
        run.save()
        options = CopyOptions(source_url=run.from_side.url, target_url=run.to_side.url, jobs=run.config.jobs,
                              shared=run.config.helpers > 0, helpers=run.config.helpers)  # fmt: skip
        progress = progress_for("bytes")
        try:
            if state.recopy:
                # The app wrote to the source after an earlier final copy (a failed verify unfroze it):
                # that copy is stale, and the target holds nothing but it.
                again = copy_database(replace(options, clean=True), progress)
                state.recopy = False
                run.save()
                return f"postgres: {again.rows} rows in {len(again.tables)} tables (copied again)"
            result = copy_resuming(options, progress, resume=resume)
        finally:
            progress.close()
        if result is None:
            return "postgres: the copy had finished before the interruption (verify checks it)"
        return f"postgres: {result.rows} rows in {len(result.tables)} tables" + (" (resumed)" if result.resumed else "")


def copy_resuming(options: CopyOptions, progress: ProgressSink, *, resume: bool) -> CopyResult | None:
    """Copy, resuming an earlier attempt when there was one; ``None`` when that attempt had finished."""
    if not resume:
        return copy_database(options, progress)
    try:
        return copy_database(replace(options, resume=True), progress)
    except ResumeError:
        # Nothing to resume: the earlier attempt had finished, or never began writing (the target says which).
        if not target_is_empty(options.target_url):
            return None
        return copy_database(options, progress)


def writable_to(run: PostgresRun) -> str:
    """The URL ferry writes to ``to_side`` with: moving back, the old database's, holding the passage
    through its fence (:mod:`migration.postgres.capture.passage`).

    :raises PreconditionError: moving back, but the follow back never began (no passage was made)."""
    if not run.back:
        return run.to_side.url
    salt = run.state.passage_salt
    if salt is None:
        raise PreconditionError("the follow back never began: the old database has no passage", side="source")
    return with_passage(run.to_side.url, passage_token(run.to_side.url, salt))


def sync_sequences_between(run: PostgresRun) -> None:
    # nextval() takes no write the fence could refuse: a sequence the app moved since comes again.
    with connect_source(run.from_side.url) as src, connect_target(writable_to(run)) as dst, capture_errors():
        sync_sequences(src, dst)
