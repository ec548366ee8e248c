"""The cutover on Heroku, step by step: alias, switch, roll back.

Heroku refuses to set ``DATABASE_URL`` while an add-on is attached as ``DATABASE``, and a
detached add-on with no other attachment is easy to lose. So the old add-on is first attached
under the rollback alias, then its ``DATABASE`` attachment is removed, and only then is
``DATABASE_URL`` set to the target. Rollback unsets it and attaches the old add-on as
``DATABASE`` again. The stack's ``ferry:cutover`` values (``stacks/cutover.py``) declare the
same sequence; these functions are the path without a stack, and what the stack's detach
step calls.
"""

from __future__ import annotations

from collections.abc import Sequence

from migration.errors import PlatformError
from migration.platform.heroku import Attachment, HerokuClient
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


def alias(client: HerokuClient, app: str, moves: Sequence[MovedAddon]) -> None:
    """Attach each old add-on under its rollback alias, then remove its main attachment."""
    for move in moves:
        current = _attachment_of(client, app, move.attachment, move.addon)  # checked before any change
        if client.find_attachment(app, move.rollback_alias) is None:
            client.attach(app, move.addon, move.rollback_alias)
        if current is not None:
            client.detach(current.id)


def switch(client: HerokuClient, app: str, urls: dict[str, str]) -> None:
    """Set ``DATABASE_URL`` (and ``REDIS_URL``) to the target in one release.

    :param urls: config var → URL.
    """
    client.set_config_vars(app, urls)


def rollback(client: HerokuClient, app: str, moves: Sequence[MovedAddon]) -> None:
    """Unset the switched config vars, then attach each old add-on under its old name again.

    Only the vars that are set are unset: after the alias and before the switch there are none (the
    detach removed them), and every config change is a release that restarts every dyno."""
    attached = {attachment.name for attachment in client.attachments(app)}
    pending = [move for move in moves if move.attachment not in attached]
    if not pending:
        return
    present = client.config_vars(app)
    switched = {move.config_var: None for move in pending if move.config_var in present}
    if switched:
        client.set_config_vars(app, switched)
    for move in pending:
        client.attach(app, move.addon, move.attachment)
