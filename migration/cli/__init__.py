"""The ``ferry`` command line: a thin shell over the library."""

from migration.cli.main import main

__all__ = ["main"]
