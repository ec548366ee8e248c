"""Cutover: what the stack declares on Heroku for each value of ``ferry:cutover``.

=============  ==============================================================================
pending        nothing on Heroku
aliased        old add-on attached under the rollback alias; its ``DATABASE`` attachment removed
switched       as aliased, and ``DATABASE_URL`` (``REDIS_URL`` when Redis moves) set as secrets
rolled_back    the switched config vars unset, then the old add-on attached as ``DATABASE`` again
=============  ==============================================================================

The order inside each value is carried by ``depends_on``: Heroku refuses ``DATABASE_URL``
while an add-on is attached as ``DATABASE``, and refuses a ``DATABASE`` attachment while a
``DATABASE_URL`` config var is set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi.dynamic
import pulumiverse_heroku as heroku

from migration.platform.cutover import detach_attachment
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
        self, name: str, *, app: str, attachment: str, addon: str, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(_DetachProvider(), name, {"app": app, "attachment": attachment, "addon": addon}, opts)


@dataclass(frozen=True)
class SwitchedAddon:
    """:param move: which add-on leaves. :param url: the target URL its config var gets (secret)."""

    move: MovedAddon
    url: pulumi.Input[str]


@dataclass(frozen=True)
class CutoverArgs:
    app: str
    state: CutoverState
    addons: Sequence[SwitchedAddon]


class Cutover(pulumi.ComponentResource):
    """The Heroku side of the switch, one stack update per step."""

    declared: list[pulumi.Resource]

    def __init__(self, name: str, args: CutoverArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ferry:stacks:Cutover", name, None, opts)
        self.declared = []
        if args.state != "pending":
            self._declare(name, args)
        self.register_outputs({"state": args.state})

    def _declare(self, name: str, args: CutoverArgs) -> None:
        invoke = pulumi.InvokeOutputOptions(parent=self)
        app_id = heroku.app.get_app_output(name=args.app, opts=invoke).uuid
        detachments: list[pulumi.Resource] = []
        addon_ids: dict[str, pulumi.Output[str]] = {}
        for switched in args.addons:
            move = switched.move
            addon_id = heroku.addon.get_addon_output(name=move.addon, opts=invoke).id
            addon_ids[move.attachment] = addon_id
            alias = self._keep(
                heroku.addon.Attachment(
                    f"{name}-{move.rollback_alias.lower()}",
                    addon_id=addon_id,
                    app_id=app_id,
                    name=move.rollback_alias,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
            if args.state in ("aliased", "switched"):
                detachments.append(
                    self._keep(
                        Detachment(
                            f"{name}-{move.attachment.lower()}-detached",
                            app=args.app,
                            attachment=move.attachment,
                            addon=move.addon,
                            opts=pulumi.ResourceOptions(parent=self, depends_on=[alias]),
                        )
                    )
                )
        if args.state == "switched":
            self._keep(
                heroku.app.ConfigAssociation(
                    f"{name}-config-vars",
                    app_id=app_id,
                    sensitive_vars={switched.move.config_var: switched.url for switched in args.addons},
                    opts=pulumi.ResourceOptions(parent=self, depends_on=detachments),
                )
            )
        elif args.state == "rolled_back":
            # Kept, emptied: updating it unsets the URLs *before* the re-attachments below; a resource
            # dropped from the program would be deleted only at the end of the update, too late.
            unset = self._keep(
                heroku.app.ConfigAssociation(
                    f"{name}-config-vars", app_id=app_id, sensitive_vars={}, opts=pulumi.ResourceOptions(parent=self)
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
