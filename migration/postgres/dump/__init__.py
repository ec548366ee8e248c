"""A ``pg_dump -Fc`` archive as the source of a copy (``ferry pg copy --from-dump FILE|URL``), and its verify.

:mod:`.archive` reads and checks the archive (its table of contents and data blocks, in Python, before
anything is written), :mod:`.download` fetches a URL to a file (resumably), :mod:`.source` turns
``--from-dump`` into a checked archive, :mod:`.selection` sorts its entries into the copy's steps,
:mod:`.load` streams a table's rows from ``pg_restore`` into the target's ``COPY``, :mod:`.phase`
schedules the loads and each loaded table's index builds, :mod:`.restore` runs the steps in order
with the live copy's target guards, markers and resume state (:mod:`migration.postgres.copy`), and
:mod:`.verify` checks a target against the archive.
"""

from migration.postgres.dump.restore import DumpCopyOptions, DumpCopyResult, copy_from_dump
from migration.postgres.dump.verify import ArchiveVerifyReport, verify_dump

__all__ = ["ArchiveVerifyReport", "DumpCopyOptions", "DumpCopyResult", "copy_from_dump", "verify_dump"]
