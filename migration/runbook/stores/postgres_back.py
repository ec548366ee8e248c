"""PostgreSQL followed back, from the switch until ``ferry finish``: the target's writes into the old database.

Capture goes on the target while the app still writes to the old database (:func:`prepare_back`, at the
end of ``catch-up``); inside the freeze, right before the switch, the target's log is emptied and the old
database is made the follow's target as of that moment, fenced for everyone but the follower
(:func:`begin_back`); after the switch a worker follows back (:func:`follow_back`). A rollback after the
switch is then the forward cutover with the sides swapped (the store's phases on
:meth:`~migration.runbook.stores.base.StoreRun.reversed` views): the target fenced, its log drained to the
fence's marker into the old database, the sequences copied back, what the follow rewrote compared, the
target's witness proved. :func:`finish` ends it: nothing of ferry's stays on either side, and the old
database's app role stays read-only (no dyno writes where nobody reads).
"""

from __future__ import annotations

import time

from migration.postgres import (
    BackOrigin,
    begin_follow_back,
    capture_errors,
    connect_source,
    connect_target,
    end_follow_back,
    ensure_capture,
    fence_with_passage,
    new_salt,
    open_follow_back,
    passage_digest,
    passage_token,
    remove_capture,
    set_read_only,
)
from migration.runbook.stores.postgres_strategy import PostgresRun, writable_to
from migration.worker import PostgresFollowJob

__all__ = ["begin_back", "close_old", "finish", "follow_back", "prepare_back"]

_FOLLOW_READY_SECONDS = 600


def prepare_back(run: PostgresRun) -> str:
    """Capture on the target, while live (an install on a big target's tables is no part of the freeze)."""
    installed = ensure_capture(run.to_side.url)
    tables = f" ({len(installed.captured)} tables)" if installed is not None else ""
    return f"postgres: capture on the target for the follow back{tables}"


def begin_back(run: PostgresRun) -> str:
    """Inside the freeze, proven equal, before the switch: the follow back begins from here. Nothing is
    written to the old database (the proof of its freeze is asked again until the switch)."""
    state = run.state
    ensure_capture(run.to_side.url)  # in place since catch-up: only a table created since is added
    with connect_target(run.to_side.url) as new, capture_errors():
        origin = begin_follow_back(new)
    state.back_origin, state.back_since = origin.to_json(), time.time()
    run.save()
    return "postgres: the follow back begins here (the target's log emptied)"


def close_old(run: PostgresRun) -> str:
    """After the switch, before the app writes again: the old database fenced for everyone but the follow back's
    passage, in every freeze mode (maintenance mode leaves it open otherwise until ``follow-back``)."""
    back = run.reversed()
    digest = _passage_digest(back)
    with connect_source(back.to_side.url) as old, capture_errors():
        fence_with_passage(old, digest)
    return "postgres: the old database fenced but for the follow back"


def _passage_digest(back: PostgresRun) -> str:
    """What the old database's fence holds of this run's passage (*back* moves back: ``to_side`` is the old
    database); its salt made the first time it is asked for."""
    state = back.state
    if state.passage_salt is None:
        state.passage_salt = new_salt()
        back.save()
    return passage_digest(passage_token(back.to_side.url, state.passage_salt))


def follow_back(run: PostgresRun) -> str:
    """The worker following the target back into the old database (*run* moves back), started again if
    dead; the first time, the old database is fenced for all but it and made its target as of the switch."""
    state = run.state
    follower = run.follower()
    if follower.alive():
        return f"postgres: following back (pid {follower.pid})"
    digest = _passage_digest(run)
    with connect_source(run.to_side.url) as old, capture_errors():
        if state.back_origin is None:
            # Again: the passage must be this run's, whatever a rollback to an earlier state left.
            fence_with_passage(old, digest)
        else:
            through = open_follow_back(old, BackOrigin.from_json(state.back_origin), digest)
            # What a rollback's freeze compares: the keys the follow back rewrites from here on. The forward
            # run's positions, marker and witness are spent.
            state.verified_through, state.deferred_ranges, state.marker, state.witness = through, [], None, None
            state.back_origin = None
            run.save()
    job = PostgresFollowJob(run.from_side.url, writable_to(run), follower.status_file)
    pid = follower.start(job, ready_phase="live", timeout=_FOLLOW_READY_SECONDS)
    return f"postgres: following the target back into the old database (pid {pid})"


def finish(run: PostgresRun) -> str:
    """The move is final (*run* moves forward): the follow back stopped, capture off both sides, the old
    database's foreign keys and triggers as they were, its app role read-only."""
    back = run.reversed()
    stopped = back.follower().stop()
    # The fence goes with capture: the role is closed first (as after a run without the follow back); ferry's
    # own sessions are writable whatever it says, and put back no row the fence would refuse.
    set_read_only(run.from_side.app_url, True)
    with connect_source(run.from_side.url) as old, capture_errors():
        restored = end_follow_back(run.to_side.url, old)
    tables = remove_capture(run.from_side.url)
    said = [
        "follow back stopped" if stopped else "no follow back was running",
        f"capture removed from both sides ({tables} tables on the old database)",
        "the old database's app role read-only",
    ]
    if restored:
        said.append(f"{restored} foreign keys put back on the old database")
    return "postgres: " + ", ".join(said)
