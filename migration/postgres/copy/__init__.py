"""The copy pipeline: one PostgreSQL database copied into another, resumable, from one snapshot.

:mod:`.pipeline` runs it step by step (locks, checks, schema dump, plan, data, indexes,
constraints, the last markers); :mod:`.schema` and :mod:`.tools` read the source's schema with
``pg_dump``, :mod:`.filters` and :mod:`.platform` say what of it is copied, :mod:`.plan` splits the
tables into parts, :mod:`.scheduler` runs the parts (:mod:`.data`, :mod:`.large_object_copy`) and
the index builds (:mod:`.indexes`), :mod:`.restore` applies the schema's entries on the target,
:mod:`.state` and :mod:`.resume` keep what a killed copy had done. A shared copy's parts are claimed
on the target (:mod:`.share`) by the leader's workers (:mod:`.shared_phase`) and by its helpers'
(:mod:`.helper`).

A layer of :mod:`migration.postgres`: it imports the shared ground (connections, the catalog,
:mod:`~migration.postgres.footprint`, :mod:`~migration.postgres.origin`) and never change capture.
"""

from migration.postgres.copy.helper import help_copy
from migration.postgres.copy.pipeline import copy_database

__all__ = ["copy_database", "help_copy"]
