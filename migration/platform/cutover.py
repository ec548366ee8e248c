"""The cutover on Heroku, step by step: alias, switch, roll back.

Heroku refuses to set ``DATABASE_URL`` while an add-on is attached as ``DATABASE``, and a
detached add-on with no other attachment is easy to lose. So the old add-on is first attached
under the rollback alias (while the app is live: one release, before the freeze); inside the freeze
its ``DATABASE`` attachment is removed and ``DATABASE_URL`` set to the target right after, nothing
between them: each is a release that restarts every dyno, and between the two the app has no
``DATABASE_URL``. The bucket variables the switch overwrites are kept for the rollback in the same
release (:mod:`migration.platform.rollbackvars`). Rollback unsets the switched variables (putting
the kept ones back) and attaches the old add-on as ``DATABASE`` again. The stack's ``ferry:cutover`` values (``stacks/cutover.py``) declare the
same sequence; these functions are the path without a stack, and what the stack's detach
step calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from migration.errors import PlatformError
from migration.platform.heroku import Attachment, HerokuClient
from migration.platform.rollbackvars import kept_for_rollback, restored_vars
from migration.stackconfig import MovedAddon

__all__ = ["MovedAddon", "alias", "detach_attachment", "rollback", "switch"]


def _attachment_of(client: HerokuClient, app: str, name: str, addon: str) -> Attachment | None:
    """The app's attachment ``name``, checked to be ``addon``'s; ``None`` when there is none.

    :raises PlatformError: ``name`` is attached to a different add-on (never detached blindly).
    """
    attachment = client.find_attachment(app, name)
    if attachment is not None and addon not in (attachment.addon_id, attachment.addon_name):
        raise PlatformError(f"{app}: {name} is attached to {attachment.addon_name}, not {addon}; refusing to detach it")
    return attachment


def detach_attachment(client: HerokuClient, app: str, name: str, addon: str) -> bool:
    """Remove the app's attachment ``name`` if it is ``addon``'s; ``False`` when already gone."""
    attachment = _attachment_of(client, app, name, addon)
    if attachment is not None:
        client.detach(attachment.id)
    return attachment is not None


def alias(client: HerokuClient, app: str, moves: Sequence[MovedAddon]) -> int:
    """Attach each old add-on under its rollback alias (its main attachment stays); the releases made."""
    releases = 0
    for move in moves:
        _attachment_of(client, app, move.attachment, move.addon)  # checked before any change
        if client.find_attachment(app, move.rollback_alias) is None:
            client.attach(app, move.addon, move.rollback_alias)
            releases += 1
    return releases


def switch(
    client: HerokuClient, app: str, urls: dict[str, str], moves: Sequence[MovedAddon], run: str | None = None
) -> int:
    """Remove each moved add-on's main attachment, then set ``DATABASE_URL`` (``REDIS_URL``, the bucket
    variables) to the target in one release; the releases made.

    :param urls: config var → value.
    :param run: which run switches (a keeper of the old values left by another run is replaced).
    """
    for move in moves:
        if client.find_attachment(app, move.rollback_alias) is None:
            raise PlatformError(f"{app}: {move.addon} is not attached as {move.rollback_alias}; refusing to detach it")
    releases = sum(detach_attachment(client, app, move.attachment, move.addon) for move in moves)
    addon_vars = {move.config_var for move in moves}
    kept = kept_for_rollback(client.config_vars(app), (name for name in urls if name not in addon_vars), run)
    client.set_config_vars(app, {**urls, **kept})
    return releases + 1


def rollback(client: HerokuClient, app: str, moves: Sequence[MovedAddon]) -> int:
    """Unset the switched config vars (the kept ones put back), then attach each old add-on under its old
    name again; the releases made.

    Only the vars that are set are unset: after the alias and before the switch there are none to unset, and
    every config change is a release that restarts every dyno."""
    attached = {attachment.name for attachment in client.attachments(app)}
    pending = [move for move in moves if move.attachment not in attached]
    present = client.config_vars(app)
    changes: dict[str, str | None] = dict(restored_vars(present))
    changes |= {move.config_var: None for move in pending if move.config_var in present}
    releases = 0
    if changes:
        client.set_config_vars(app, changes)
        releases += 1
    for move in pending:
        client.attach(app, move.addon, move.attachment)
        releases += 1
    return releases
