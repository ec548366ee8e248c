"""The Pulumi program. ``pulumi up -s <env>`` and ``ferry run --stack <env>`` both run this file."""

import pulumi
import pulumi.runtime.config

from migration.errors import ConfigError
from migration.stackconfig import from_pulumi
from stacks.program import declare

try:
    config = from_pulumi(
        pulumi.Config("ferry").get,
        stack=pulumi.get_stack(),
        aws_region=pulumi.Config("aws").get("region"),
        # Every key the engine passed, so a misspelled `ferry:` key fails instead of being ignored.
        keys=pulumi.runtime.config.CONFIG.get().keys(),
    )
except ConfigError as exc:
    # One line naming the key, instead of a traceback in `pulumi up`'s diagnostics.
    raise pulumi.RunError(str(exc)) from None

declare(config)
