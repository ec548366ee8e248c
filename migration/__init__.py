"""ferry: move an application's data stores onto AWS, verified and reversible."""

from migration.errors import FerryError
from migration.postgres import CopyOptions, CopyResult, DumpFilters, SourceSnapshot, copy_database

__all__ = ["CopyOptions", "CopyResult", "DumpFilters", "FerryError", "SourceSnapshot", "copy_database"]
__version__ = "0.1.0"
