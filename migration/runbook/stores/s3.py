"""S3 in the runbook: followed from the copy on, never stopped, synced once more after the switch.

Nothing stops an app's uploads short of stopping the app, so S3 takes no part in the freeze: uploads go
to the old buckets until the switch while a follower (a worker, listing diffs on an interval) keeps the
new ones close behind. After the switch, once the app runs the new release, the follower is drained and
what the old buckets took since its last pass is brought over by the rules of
:mod:`migration.s3.aftersync` (never over the app's own writes to the new buckets), then both are listed
again. The switch points the app's bucket variables (``storage.buckets[].configVars``) at the new buckets.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeAlias

from migration.errors import FollowerError, UsageError
from migration.redact import register_secret
from migration.runbook.context import RunSettings
from migration.runbook.follower import FollowerStatus
from migration.runbook.state import StoreState
from migration.runbook.stores.base import ProgressFor, Side, Store, StoreRun, StoreVerify, Whereabouts
from migration.s3 import Ledger, S3Side, hold_path, ledger_path, sync_after_switch, verify_after_switch
from migration.stackconfig import BucketConfig, StackConfig
from migration.worker import S3FollowJob

__all__ = ["FollowBuckets", "S3Store"]

_FIRST_PASS_TIMEOUT_SECONDS = 12 * 3600
_DRAIN_TIMEOUT_SECONDS = 3600
#: The app's key pair for the new buckets, when a run is given its targets instead of a stack (which makes one).
APP_KEY_ENV = ("FERRY_APP_S3_ACCESS_KEY_ID", "FERRY_APP_S3_SECRET_ACCESS_KEY")


@dataclass(frozen=True)
class BucketsSide:
    """One side's buckets, in the order the stack file lists them, and how to reach them.

    :param app_config: the app's variables that point it at these buckets (the target side's only): asked
        for by the switch alone, since the key pair may be needed nowhere else.
    """

    credentials: S3Side
    buckets: tuple[str, ...]
    app_config: Callable[[], dict[str, str]] = field(default=dict, repr=False)


@dataclass
class S3State(StoreState):
    """:param after_switch: what the sync after the switch found (arrived, deleted, lag, conflicts)."""

    after_switch: dict[str, Any] = field(default_factory=dict)


S3Run: TypeAlias = StoreRun[StackConfig, S3State, BucketsSide]


class FollowBuckets:
    """Synced by a follower from the copy on, through the freeze and the switch; brought level after it."""

    def copy_live(self, run: S3Run) -> str:
        follower = run.follower()
        if follower.alive():
            return f"s3: follower already running (pid {follower.pid})"
        pairs = [[old, new] for old, new in _pairs(run)]
        job = S3FollowJob(pairs, follower.status_file, str(run.work_dir))
        pid = follower.start(job, ready_phase="live", timeout=_FIRST_PASS_TIMEOUT_SECONDS)
        return f"s3: first pass done, following uploads (pid {pid})"

    def held(self, run: S3Run) -> str:
        """Inside the freeze, before the switch: the follower has stopped copying (the pass under way ends at
        its next object), so nothing of ferry's lands in the new buckets once the app writes there."""
        follower = run.follower()
        hold = hold_path(follower.status_file)
        if not hold.exists():
            hold.touch()
        # Since the hold began (the freeze's, as writes stopped): the follower may have said "held" already.
        since = hold.stat().st_mtime - 0.001
        deadline = time.monotonic() + _DRAIN_TIMEOUT_SECONDS
        # Said since this hold began: a "held" left from an earlier freeze (a failed verify unfroze the app)
        # tells nothing of the pass the follower began since.
        while follower.alive() and (
            (status := follower.status()) is None or status.phase != "held" or status.at < since
        ):
            if time.monotonic() > deadline:
                raise FollowerError(
                    f"s3 follower (pid {follower.pid}) did not stop copying in {_DRAIN_TIMEOUT_SECONDS} s"
                )
            time.sleep(0.02)
        return "s3: follower held (uploads go on to the old buckets until the switch; synced after it)"

    def after_switch(self, run: S3Run) -> str:
        follower = run.follower()
        # Stopped while held: it makes no pass of its own after the switch, which would not know the app's writes.
        if not follower.drain(_DRAIN_TIMEOUT_SECONDS) and not run.back:  # the sync back has no follower
            run.say("s3 follower was not running to the end; the sync after the switch lists everything")
        hold_path(follower.status_file).unlink(missing_ok=True)
        done, arrived, deleted, lag, conflicts = [], 0, 0, 0.0, []
        for old, new in _pairs(run):
            with Ledger(ledger_path(run.work_dir, old, new)) as ledger:
                result = sync_after_switch(
                    f"s3://{old}", f"s3://{new}", run.from_side.credentials, run.to_side.credentials, ledger
                )
            for conflict in result.conflicts:
                run.say(f"s3 {new}/{conflict}: written by the app since the switch and changed in {old} too: kept")
            arrived, deleted = arrived + result.arrived, deleted + result.deleted
            lag = max(lag, result.lag_seconds)
            conflicts += [f"{new}/{key}" for key in result.conflicts]
            done.append(f"s3 {old} → {new}: {result.arrived} arrived after the last pass, {result.deleted} deleted")
        totals = {
            "arrived_after_switch": arrived,
            "deleted": deleted,
            "lag_seconds": round(lag, 3),
            "conflicts": conflicts,
        }
        run.state.after_switch = totals
        run.save()
        return "; ".join(done)

    def verify(self, run: S3Run) -> list[StoreVerify]:
        reports = []
        for old, new in _pairs(run):
            with Ledger(ledger_path(run.work_dir, old, new)) as ledger:
                report = verify_after_switch(
                    f"s3://{old}", f"s3://{new}", run.from_side.credentials, run.to_side.credentials, ledger
                )
            reports.append(StoreVerify.of(f"s3:{old}", report))
        return reports


class S3Store(Store[StackConfig, S3State, BucketsSide]):
    name = "s3"
    section = S3State
    strategy = FollowBuckets()
    follows_after_switch = True

    def configure(self, config: StackConfig, settings: RunSettings) -> StackConfig:
        return config  # the buckets' names are the stack file's: the endpoints read them

    def moves(self, config: StackConfig, where: Whereabouts) -> bool:
        return bool(_moved_buckets(config))

    def endpoint(self, where: Whereabouts, side: Side) -> BucketsSide:
        config = where.config
        moved = _moved_buckets(config)
        if side == "source":
            return BucketsSide(S3Side.from_env(side), tuple(str(bucket.source) for bucket in moved))
        assert config.storage is not None  # moved buckets need it
        names = tuple(config.storage.bucket_name(config.app, config.stack, bucket) for bucket in moved)
        return BucketsSide(S3Side.from_env(side), names, partial(app_config, where, moved, names))

    def switched_config(self, run: S3Run) -> dict[str, str]:
        return run.to_side.app_config()

    def recorded(self, run: S3Run) -> dict[str, Any]:
        return {"buckets": dict(_pairs(run))}

    def copy_live(self, run: S3Run) -> str:
        return self.strategy.copy_live(run)

    def live_status(self, run: S3Run) -> FollowerStatus | None:
        return run.follower().status()

    def catch_up(self, run: S3Run) -> str:
        if run.back:
            return _sync_back_before_switch(run)
        status = self.live_status(run)
        if status is None:
            return ""
        return f"s3: the last pass began {status.seconds_behind:.1f} s ago ({status.applied} objects copied so far)"

    def writes_stopped(self, run: S3Run) -> str:
        # Uploads go on, and what lands now is synced after the switch: the freeze's drain has the cores.
        if not run.back:
            hold_path(run.follower().status_file).touch()
        return ""

    def forget_copy(self, run: S3Run) -> None:
        hold_path(run.follower().status_file).unlink(missing_ok=True)  # unfrozen: following again

    def final_sync(self, run: S3Run, progress_for: ProgressFor) -> str:
        if run.back:
            return "s3: uploads go on to the new buckets until the switch back; synced after it"
        # Held since the freeze began; the switch waits until the follower says so (``prove_frozen``): a listing
        # under way may take a while to end, and the other stores' drain and verify go on meanwhile.
        hold = hold_path(run.follower().status_file)
        if not hold.exists():  # since when it holds is the file's time: kept
            hold.touch()
        return "s3: follower holding (uploads go on to the old buckets until the switch; synced after it)"

    def verify(self, run: S3Run) -> list[StoreVerify]:
        return []  # the old buckets take uploads until the switch: compared after it (after_switch)

    def prove_frozen(self, run: S3Run) -> list[StoreVerify]:
        """Nothing of ferry's is on its way into the new buckets: the app may write there now."""
        if not run.back:  # moving back no follower copies: the rollback syncs after its switch
            run.say(self.strategy.held(run))
        return []

    def after_switch(self, run: S3Run) -> tuple[str, list[StoreVerify]]:
        """Once the app runs the new release: what the old buckets took since the last pass, then a verify."""
        return self.strategy.after_switch(run), self.strategy.verify(run)

    def stop_following(self, run: S3Run) -> str:
        hold_path(run.follower().status_file).unlink(missing_ok=True)
        return "s3 follower stopped" if run.follower().stop() else ""

    def follow_back(self, run: S3Run) -> str:
        """The sync back (*run* moves back) starts knowing every object the forward sync copied: those the app
        deleted or replaced in the new buckets since are deleted or replaced in the old ones by a rollback."""
        known = 0
        for new, old in _pairs(run):
            forward = ledger_path(run.work_dir, old, new)
            if forward.exists():  # gone: taken over already, by a run that crashed after
                with Ledger(forward) as there, Ledger(ledger_path(run.work_dir, new, old)) as back:
                    known += back.adopt(there)
        if run.state.back_since is None:
            run.state.back_since = time.time()
            run.save()
        return f"s3: {known} objects known to the sync back (a rollback brings the new buckets' changes back)"

    def finish(self, run: S3Run) -> str:
        for old, new in _pairs(run):
            ledger = ledger_path(run.work_dir, new, old)
            for path in ledger.parent.glob(ledger.name + "*"):
                path.unlink(missing_ok=True)
        return ""

    def cleanup(self, run: S3Run) -> str:
        for old, new in _pairs(run):
            ledger = ledger_path(run.work_dir, old, new)
            for path in ledger.parent.glob(ledger.name + "*"):  # with SQLite's -wal and -shm beside it
                path.unlink(missing_ok=True)
        return ""


def _sync_back_before_switch(run: S3Run) -> str:
    """A rollback's catch-up (*run* moves back): the old buckets brought to the new ones while the app still
    writes only to the new ones, so what happened to the old ones meanwhile was a stray's: a delete or an
    overwrite of what the app has is undone there (after the switch back, the old buckets' changes are the
    app's own, and the sync after it keeps them)."""
    arrived = replaced = 0
    for new, old in _pairs(run):
        with Ledger(ledger_path(run.work_dir, new, old)) as ledger:
            result = sync_after_switch(
                f"s3://{new}", f"s3://{old}", run.from_side.credentials, run.to_side.credentials, ledger,
                target_strays=True,
            )  # fmt: skip
        arrived, replaced = arrived + result.arrived, replaced + result.replaced_strays
    return f"s3: {arrived} objects synced back while live ({replaced} a stray had deleted or replaced)"


def _pairs(run: S3Run) -> list[tuple[str, str]]:
    """(old bucket, new bucket) for each moved bucket, from ``from_side`` to ``to_side``."""
    return list(zip(run.from_side.buckets, run.to_side.buckets, strict=True))


def _moved_buckets(config: StackConfig) -> list[BucketConfig]:
    storage = config.storage
    if not config.migration.s3 or storage is None:
        return []
    return [bucket for bucket in storage.buckets if bucket.source]


def app_config(where: Whereabouts, moved: list[BucketConfig], names: tuple[str, ...]) -> dict[str, str]:
    """The app's bucket variables pointed at the new buckets: name, region, and its IAM user's key pair (the
    stack's, or from ``FERRY_APP_S3_*`` when the run is given its targets)."""
    values: dict[str, str] = {}
    for bucket, name in zip(moved, names, strict=True):
        config_vars = bucket.config_vars
        if config_vars is None:
            continue
        values[config_vars.bucket] = name
        if config_vars.region:
            values[config_vars.region] = where.config.aws_region
        if config_vars.access_key_id and config_vars.secret_access_key:
            if where.settings.uses_stack:
                key_id, secret = (
                    str(where.stack_output("appAccessKeyId")),
                    str(where.stack_output("appSecretAccessKey")),
                )
            else:
                key_id, secret = (os.environ.get(name, "") for name in APP_KEY_ENV)
            if not key_id or not secret:
                raise UsageError(
                    f"storage configVars name an access key pair for the app: set {APP_KEY_ENV[0]} and "
                    f"{APP_KEY_ENV[1]} (its IAM user's keys for the new buckets), or run with the stack, which "
                    "creates them",
                    side="target",
                )
            register_secret(secret)
            values[config_vars.access_key_id], values[config_vars.secret_access_key] = key_id, secret
    return values
