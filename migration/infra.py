"""The Automation API side of ``ferry run``: provision, cutover updates, outputs, export.

A ``LocalWorkspace`` on the project root, so ``ferry`` runs the same ``__main__.py`` and
``Pulumi.<env>.yaml`` as ``pulumi up -s <env>``. Pulumi's errors are translated here only.
Secrets stay secret: updates run with ``show_secrets=False`` and outputs marked secret are
masked before anything is printed or written.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migration.errors import InfraError, PreconditionError
from migration.redact import redact

__all__ = ["INSTALL_HINT", "MASK", "Infra", "StackOutputs", "pulumi_cli"]

INSTALL_HINT = (
    "the Pulumi CLI is not installed (install it: curl -fsSL https://get.pulumi.com | sh), "
    "or give --target-url to run against a target you built yourself"
)
MASK = "[secret]"


def pulumi_cli() -> str | None:
    """Where the ``pulumi`` CLI is, if anywhere."""
    return shutil.which("pulumi")


@dataclass(frozen=True)
class StackOutputs:
    """A stack's outputs: plain values, and the secret ones kept apart."""

    values: dict[str, Any]
    secret_keys: frozenset[str]

    def masked(self) -> dict[str, Any]:
        return {key: MASK if key in self.secret_keys else value for key, value in self.values.items()}


@contextmanager
def _pulumi_errors(action: str) -> Iterator[None]:
    from pulumi.automation import errors

    try:
        yield
    except errors.StackNotFoundError as exc:
        raise PreconditionError(f"pulumi {action}: no such stack; create it once with `pulumi stack init`") from exc
    except errors.ConcurrentUpdateError as exc:
        raise PreconditionError(f"pulumi {action}: another update of this stack is running") from exc
    except errors.CommandError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if "error:" in line]
        detail = lines[-1] if lines else str(exc).strip().splitlines()[0]
        raise InfraError(f"pulumi {action}: {redact(detail)}") from exc


class Infra:
    """One stack of the project at ``root``.

    :param root: the directory with ``Pulumi.yaml``.
    :param stack: the stack (environment) name.
    :param on_output: receives the engine's output lines (already free of secrets).
    :raises InfraError: the Pulumi CLI is missing (:data:`INSTALL_HINT`).
    """

    def __init__(self, root: Path, stack: str, on_output: Callable[[str], None]) -> None:
        if pulumi_cli() is None:
            raise InfraError(INSTALL_HINT)
        from pulumi import automation

        self._on_output = on_output
        with _pulumi_errors("stack select"):
            self._stack = automation.select_stack(stack_name=stack, work_dir=str(root))

    def _print(self, line: str) -> None:
        self._on_output(redact(line.rstrip()))

    def up(self, message: str) -> StackOutputs:
        """``pulumi up`` with no prompts; returns the stack's outputs."""
        with _pulumi_errors("up"):
            self._stack.up(on_output=self._print, show_secrets=False, message=message, color="never")
        return self.outputs()

    def set_cutover(self, state: str, *, end_bulk_load: bool = False, key: str = "cutover") -> StackOutputs:
        """Set ``ferry:cutover`` (or a move's, *key*: ``moves[i].cutover``) and apply it: one stack update per
        cutover step.

        :param end_bulk_load: also set ``ferry:migration.loading`` to false in the same update, so
            the database leaves the bulk-load parameter profile as the app arrives.
        """
        from pulumi.automation import ConfigValue

        with _pulumi_errors("config set"):
            self._stack.set_config(f"ferry:{key}", ConfigValue(value=state), path=key != "cutover")
            if end_bulk_load:
                self._stack.set_config("ferry:migration.loading", ConfigValue(value="false"), path=True)
        return self.up(f"ferry: cutover {state}" + (f" ({key})" if key != "cutover" else ""))

    def settle(self) -> StackOutputs:
        """Set ``ferry:database.settled`` and apply it, after the switch and the unfreeze: the instance back at
        ``instanceClass`` from ``loadInstanceClass`` (applied at once), the read replicas created, and with
        ``replicaConfigVar`` the app given the first replica's URL. A repeat (after a crash) sets and applies the
        same again: nothing is left to change once one update went through."""
        from pulumi.automation import ConfigValue

        with _pulumi_errors("config set"):
            self._stack.set_config("ferry:database.settled", ConfigValue(value="true"), path=True)
        return self.up("ferry: settle the database (instance class, read replicas)")

    def outputs(self) -> StackOutputs:
        with _pulumi_errors("stack output"):
            outputs = self._stack.outputs()
        return StackOutputs(
            values={key: output.value for key, output in outputs.items()},
            secret_keys=frozenset(key for key, output in outputs.items() if output.secret),
        )

    def export(self) -> dict[str, Any]:
        """``pulumi stack export`` (secrets stay encrypted in it, as Pulumi stores them)."""
        with _pulumi_errors("stack export"):
            deployment = self._stack.export_stack()
        return {"version": deployment.version, "deployment": deployment.deployment}
