"""The Pulumi program's components: network, database, storage, cache, cutover; and the typed config.

``__main__.py`` reads the config and calls :func:`declare`; the ``ferry`` driver reads the same
``Pulumi.<env>.yaml`` through :func:`load_stack_file`.
"""

from stacks.config import CUTOVER_STATES, CutoverState, StackConfig, from_pulumi, load_stack_file
from stacks.program import Target, declare

__all__ = ["CUTOVER_STATES", "CutoverState", "StackConfig", "Target", "declare", "from_pulumi", "load_stack_file"]
