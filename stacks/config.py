"""The stack's typed configuration, as the Pulumi program's components use it.

The models and the ``Pulumi.<env>.yaml`` reader live in :mod:`migration.stackconfig`
(no Pulumi there, so the driver loads them cheaply); this module names them for the
program. ``stacks`` depends on ``migration``, never the other way round.
"""

from migration.stackconfig import *  # noqa: F403 - the same names, by the same list
from migration.stackconfig import __all__ as __all__
