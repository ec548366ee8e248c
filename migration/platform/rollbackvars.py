"""The app's own config variables the switch overwrites (a bucket's name, region, key pair), kept on the app
for the rollback in one variable of its own: ``FERRY_ROLLBACK_CONFIG``.

An add-on's URL comes back by attaching the add-on again; an ordinary variable has nothing to come back
from. Its old value is a secret at times (the old key pair), which the run's state never holds, so it stays
where it already was: on the app, beside the values it replaces, set in the very release that replaces them.
It is JSON: ``{"run": "<which run kept it>", "vars": {"S3_BUCKET": "old-bucket", "AWS_REGION": null}}``
(``null``: the app did not have the variable).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from migration.errors import PlatformError
from migration.stackconfig import ROLLBACK_VAR

__all__ = ["ROLLBACK_VAR", "kept_for_rollback", "restored_vars"]


@dataclass(frozen=True)
class _Kept:
    run: str | None
    values: dict[str, str | None]


def _read(current: Mapping[str, str]) -> _Kept | None:
    """What the app keeps, or ``None``. :raises PlatformError: it holds something ferry did not write."""
    text = current.get(ROLLBACK_VAR)
    if text is None:
        return None
    try:
        data = json.loads(text)
        values = data["vars"]
        run = data.get("run")
        if not isinstance(values, dict) or not (run is None or isinstance(run, str)):
            raise TypeError
        if not all(isinstance(v, str | None) for v in values.values()):
            raise TypeError
    except (ValueError, TypeError, KeyError, AttributeError):
        raise PlatformError(
            f"{ROLLBACK_VAR} on the app is not what ferry wrote, so the variables it keeps for the rollback cannot be "
            "read: put the old bucket variables back by hand and unset it"
        ) from None
    return _Kept(run, {str(name): value for name, value in values.items()})


def _written(run: str | None, values: Mapping[str, str | None]) -> dict[str, str]:
    return {ROLLBACK_VAR: json.dumps({"run": run, "vars": dict(sorted(values.items()))})}


def kept_for_rollback(current: Mapping[str, str], names: Iterable[str], run: str | None = None) -> dict[str, str]:
    """What the switch's release adds so the rollback can put *names* back, from the app's *current* config.

    A keeper this run wrote stays (a second try after a crash sees the new values: only the kept ones are
    the old), grown by the names it lacks (a stack file that names one more variable since); a keeper of
    another run (one that ended long ago) is replaced.

    :param run: which run switches (``None``: whichever wrote the keeper there).
    :raises PlatformError: the app holds a keeper ferry cannot read.
    """
    names = sorted(set(names))
    kept = _read(current)
    if kept is not None and (run is None or kept.run == run):
        missing = [name for name in names if name not in kept.values]
        return _written(kept.run, {**kept.values, **{n: current.get(n) for n in missing}}) if missing else {}
    return _written(run, {name: current.get(name) for name in names}) if names else {}


def restored_vars(current: Mapping[str, str]) -> dict[str, str | None]:
    """The changes that put the kept variables back as they were (``None``: it was not set) and drop the
    keeper; nothing when there is none.

    :raises PlatformError: the app holds a keeper ferry cannot read (nothing is changed then).
    """
    kept = _read(current)
    if kept is None:
        return {}
    return {**kept.values, ROLLBACK_VAR: None}
