"""Cutover: what the stack declares on Heroku for each value of ``ferry:cutover``.

=============  ==============================================================================
pending        nothing on Heroku
aliased        the old add-on attached under the rollback alias, nothing else: set while the app is
               live, before the freeze; the app keeps its ``DATABASE`` attachment and ``DATABASE_URL``
switched       the alias, then its ``DATABASE`` attachment removed, then in one release the moved
               add-ons' URLs (``DATABASE_URL``, ``REDIS_URL`` when Redis moves) and the moved buckets'
               variables (bucket name, region, the app user's key pair) set as secrets, with the
               bucket variables' old values kept on the app in ``FERRY_ROLLBACK_CONFIG``
rolled_back    the alias; the switched variables and ``FERRY_ROLLBACK_CONFIG`` unset, the bucket
               ones back at the values it kept, then the old add-on attached as ``DATABASE`` again
=============  ==============================================================================

The order inside each value is carried by ``depends_on``: Heroku refuses ``DATABASE_URL``
while an add-on is attached as ``DATABASE``, and refuses a ``DATABASE`` attachment while a
``DATABASE_URL`` config var is set. Between the detachment and the config set the app has no
``DATABASE_URL``, so the detachment also waits for every value the config set holds: nothing the
update changes (a database leaving its bulk-load profile, a new key pair) runs between the two.

The old bucket values are read from the app itself (``heroku.app.getApp``'s config vars) and stay there, as on
the path without a stack (:mod:`migration.platform.rollbackvars`): never in the stack's config, whose secrets
Pulumi's Automation API passes on a command line. The config association holds every variable it manages, and
the provider unsets one it no longer lists: so each update lists the keeper again while the app has it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic
import pulumiverse_heroku as heroku

from migration.errors import PlatformError
from migration.platform.cutover import detach_attachment
from migration.platform.rollbackvars import ROLLBACK_VAR, kept_for_rollback, restored_vars
from migration.stackconfig import MovedAddon
from stacks.config import CutoverState

__all__ = ["Cutover", "CutoverArgs", "Detachment", "SwitchedAddon"]


class _DetachProvider(pulumi.dynamic.ResourceProvider):
    """Removes an attachment through the Platform API (no provider resource can delete what it did not create).

    The token comes from ``HEROKU_API_KEY`` in the engine's environment, never from the state.
    """

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        from migration.platform.heroku import HerokuClient

        with HerokuClient() as client:
            detach_attachment(client, props["app"], props["attachment"], props["addon"])
        return pulumi.dynamic.CreateResult(id_=f"{props['app']}/{props['attachment']}", outs=props)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        # Dropping this record never re-attaches: rolled_back attaches explicitly, after unsetting the URL.
        return None


class Detachment(pulumi.dynamic.Resource):
    """The app's ``attachment`` of ``addon`` removed (a record in the stack; deleting it changes nothing)."""

    def __init__(
        self,
        name: str,
        *,
        app: str,
        attachment: str,
        addon: str,
        after: pulumi.Input[bool] = True,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """:param after: an input that resolves once everything the detachment must wait for is there."""
        props = {"app": app, "attachment": attachment, "addon": addon, "after": after}
        super().__init__(_DetachProvider(), name, props, opts)


@dataclass(frozen=True)
class SwitchedAddon:
    """:param move: which add-on leaves. :param url: the target URL its config var gets (secret)."""

    move: MovedAddon
    url: pulumi.Input[str]


@dataclass(frozen=True)
class CutoverArgs:
    """What the cutover declares on Heroku.

    :param app: the Heroku app's name.
    :param state: ``ferry:cutover``.
    :param addons: the add-ons the app leaves, each with its new URL.
    :param switched_vars: the other config variables ``switched`` sets (the moved buckets'): variable → new
        value. Their old values are kept on the app for ``rolled_back`` (``FERRY_ROLLBACK_CONFIG``).
    """

    app: str
    state: CutoverState
    addons: Sequence[SwitchedAddon]
    switched_vars: Mapping[str, pulumi.Input[str]]


class Cutover(pulumi.ComponentResource):
    """The Heroku side of the switch, one stack update per step."""

    declared: list[pulumi.Resource]

    def __init__(self, name: str, args: CutoverArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ferry:stacks:Cutover", name, None, opts)
        self.declared = []
        clash = sorted(set(args.switched_vars) & {switched.move.config_var for switched in args.addons})
        if clash:
            raise pulumi.RunError(f"config variable {clash[0]} would hold both an add-on's URL and a bucket's setting")
        if args.state != "pending":
            self._declare(name, args)
        self.register_outputs({"state": args.state})

    def _declare(self, name: str, args: CutoverArgs) -> None:
        invoke = pulumi.InvokeOutputOptions(parent=self)
        app = heroku.app.get_app_output(name=args.app, opts=invoke)
        app_id = app.uuid
        # The app's variables as they are before this update: the old bucket values among them.
        current: pulumi.Output[Mapping[str, str]] = pulumi.Output.secret(app.config_vars)
        aliases: dict[str, pulumi.Resource] = {}
        addon_ids: dict[str, pulumi.Output[str]] = {}
        for switched in args.addons:
            move = switched.move
            addon_ids[move.attachment] = heroku.addon.get_addon_output(name=move.addon, opts=invoke).id
            aliases[move.attachment] = self._keep(
                heroku.addon.Attachment(
                    f"{name}-{move.rollback_alias.lower()}",
                    addon_id=addon_ids[move.attachment],
                    app_id=app_id,
                    name=move.rollback_alias,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        if args.state == "switched":
            self._switch(name, args, app_id, current, aliases)
        elif args.state == "rolled_back":
            self._roll_back(name, args, app_id, current, addon_ids)

    def _switch(
        self,
        name: str,
        args: CutoverArgs,
        app_id: pulumi.Output[str],
        current: pulumi.Output[Mapping[str, str]],
        aliases: Mapping[str, pulumi.Resource],
    ) -> None:
        new_values: dict[str, pulumi.Input[str]] = {
            **args.switched_vars,
            **{switched.move.config_var: switched.url for switched in args.addons},
        }
        bucket_vars = sorted(args.switched_vars)
        listed: pulumi.Output[dict[str, str]] = pulumi.Output.all(current, pulumi.Output.from_input(new_values)).apply(
            lambda both: {**both[1], **_keeper(both[0], bucket_vars)}
        )
        config_vars: pulumi.Output[dict[str, str]] = pulumi.Output.secret(listed)
        # Resolves once every value below is: the detachments then wait for whatever this update still changes
        # behind those values, and the config set follows them at once.
        values_known = config_vars.apply(lambda _values: True)
        detachments = [
            self._keep(
                Detachment(
                    f"{name}-{switched.move.attachment.lower()}-detached",
                    app=args.app,
                    attachment=switched.move.attachment,
                    addon=switched.move.addon,
                    after=values_known,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[aliases[switched.move.attachment]]),
                )
            )
            for switched in args.addons
        ]
        self._keep(
            heroku.app.ConfigAssociation(
                f"{name}-config-vars",
                app_id=app_id,
                sensitive_vars=config_vars,
                opts=pulumi.ResourceOptions(parent=self, depends_on=detachments),
            )
        )

    def _roll_back(
        self,
        name: str,
        args: CutoverArgs,
        app_id: pulumi.Output[str],
        current: pulumi.Output[Mapping[str, str]],
        addon_ids: Mapping[str, pulumi.Output[str]],
    ) -> None:
        addon_vars = {switched.move.config_var for switched in args.addons}
        bucket_vars = sorted(args.switched_vars)
        listed: pulumi.Output[dict[str, str]] = current.apply(lambda now: _restored(now, bucket_vars, addon_vars))
        restored: pulumi.Output[dict[str, str]] = pulumi.Output.secret(listed)
        # Kept, under the same name: updating it sets the old values and unsets the rest *before* the
        # re-attachments below; a resource dropped from the program would be deleted only at the end, too late.
        unset = self._keep(
            heroku.app.ConfigAssociation(
                f"{name}-config-vars",
                app_id=app_id,
                sensitive_vars=restored,
                opts=pulumi.ResourceOptions(parent=self),
            )
        )
        for switched in args.addons:
            self._keep(
                heroku.addon.Attachment(
                    f"{name}-{switched.move.attachment.lower()}-restored",
                    addon_id=addon_ids[switched.move.attachment],
                    app_id=app_id,
                    name=switched.move.attachment,
                    opts=pulumi.ResourceOptions(parent=self, depends_on=[unset]),
                )
            )

    def _keep(self, resource: pulumi.Resource) -> pulumi.Resource:
        self.declared.append(resource)
        return resource


def _keeper(current: Mapping[str, str] | None, bucket_vars: Sequence[str]) -> dict[str, str]:
    """``FERRY_ROLLBACK_CONFIG`` as ``switched`` lists it: the one the app holds, unchanged (an update after the
    switch: the app holds the new values, and only the kept ones are the old), else the old values now."""
    current = current or {}
    grown = kept_for_rollback(current, bucket_vars)  # a variable the stack file names since is kept too
    if not grown and ROLLBACK_VAR in current:
        return {ROLLBACK_VAR: current[ROLLBACK_VAR]}
    return grown


def _restored(current: Mapping[str, str] | None, bucket_vars: Sequence[str], addon_vars: set[str]) -> dict[str, str]:
    """What ``rolled_back`` lists: the kept old values; a variable the app did not have, the keeper and the
    add-ons' URLs (which come back with their attachments, refused while the variable is set) left out, so unset.
    """
    current = current or {}
    try:
        changes = restored_vars(current)
    except PlatformError:
        # Not ferry's to read: left as it is (`ferry rollback` refuses it in one line before this update runs;
        # an error raised here, inside an apply, would not reach the user as one).
        changes = {}
    if not changes:
        # Nothing (readable) kept: an update after the rollback, the app holding the old values again, or a rollback
        # before anything switched, the app never having lost them. Listed as they are, since one left out is unset.
        return {var: current[var] for var in (*bucket_vars, ROLLBACK_VAR) if var in current}
    return {var: value for var, value in changes.items() if value is not None and var not in addon_vars}
