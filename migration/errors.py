"""The one exception hierarchy of ferry.

Third-party errors (psycopg, subprocess, …) are translated into these at the boundary
where they happen, so the CLI only ever catches :class:`FerryError` and prints one line::

    FerryError
    ├── UsageError                  bad option or argument combination
    │   ├── InvalidURLError         a connection URL that cannot be parsed
    │   └── ConfigError             a stack file (Pulumi.<env>.yaml) with a missing or invalid key
    ├── ConnectError                a server could not be reached or would not let us in
    │   ├── HostUnreachableError
    │   ├── AuthenticationError
    │   └── DatabaseMissingError
    ├── PreconditionError           the copy would fail or would lose something
    │   ├── TargetNotEmptyError
    │   ├── SameStoreError          the target is the source (or overlaps it) under another spelling
    │   ├── ToolError               pg_dump / pg_restore / psql missing, too old or failing
    │   ├── ExtensionMissingError
    │   └── LocalServerError        a rehearsal's or test's own server (PostgreSQL, Redis, moto) did not start
    ├── SourceChangedError          the source changed under a running copy
    ├── DatabaseError               any other SQL error, with the side it came from
    ├── PlatformError               the app's platform (Heroku Platform API) refused or failed
    ├── InfraError                  Pulumi (the Automation API or its CLI) missing or failing
    ├── FollowerError               a background copy (the live Redis copy) died, stalled or did not drain
    ├── RunnerError                 a data-plane task (local child, ECS task) could not start, failed or vanished
    ├── RunbookError                a ferry run that cannot start or go on (locked, wrong phase, …)
    │   ├── DifferencesFoundError   its verify phase found differences (exit code 1, like verify)
    │   └── SmokeFailedError        a smoke URL did not answer 2xx/3xx after the switch
    ├── ResumeError                 nothing to resume, or a resume that does not match
    └── CopyRunningError            another copy is running into the same target

Every error may name a *side* (``"source"`` or ``"target"``); ``str(error)`` starts with
it, so the one line printed by the CLI says which server the problem is on.
"""

from __future__ import annotations

from typing import Literal

Side = Literal["source", "target"]

__all__ = [
    "AuthenticationError",
    "ConfigError",
    "ConnectError",
    "CopyRunningError",
    "DatabaseError",
    "DatabaseMissingError",
    "DifferencesFoundError",
    "ExtensionMissingError",
    "FerryError",
    "FollowerError",
    "HostUnreachableError",
    "InfraError",
    "InvalidURLError",
    "LocalServerError",
    "PlatformError",
    "PreconditionError",
    "ResumeError",
    "RunbookError",
    "RunnerError",
    "SameStoreError",
    "Side",
    "SmokeFailedError",
    "SourceChangedError",
    "TargetNotEmptyError",
    "ToolError",
    "UsageError",
]


class FerryError(Exception):
    """Base of every error ferry raises on purpose.

    :param message: one line saying what is wrong, without secrets.
    :param side: which server the problem is on, when it is on one.
    """

    exit_code = 2

    def __init__(self, message: str, *, side: Side | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.side = side

    def __str__(self) -> str:
        return f"{self.side}: {self.message}" if self.side else self.message


class UsageError(FerryError):
    """An option or argument the user gave cannot work."""


class InvalidURLError(UsageError):
    """A connection URL that cannot be parsed."""


class ConfigError(UsageError):
    """A stack configuration file that is missing, malformed or has an invalid key."""


class ConnectError(FerryError):
    """A server could not be reached or refused us."""


class HostUnreachableError(ConnectError):
    """Nothing answers at the host and port of the URL."""


class AuthenticationError(ConnectError):
    """The server refused the user name or password."""


class DatabaseMissingError(ConnectError):
    """The database named in the URL does not exist."""


class PreconditionError(FerryError):
    """A check before the copy found something that would make it fail."""


class TargetNotEmptyError(PreconditionError):
    """The target database already holds objects."""


class SameStoreError(PreconditionError):
    """The target is the source itself (or overlaps it): writing to it would destroy the source."""


class ToolError(PreconditionError):
    """A PostgreSQL client program is missing, too old, or failed."""


class ExtensionMissingError(PreconditionError):
    """The source uses an extension the target server does not offer."""


class LocalServerError(PreconditionError):
    """A server ferry starts itself (a rehearsal's or a test's PostgreSQL, Redis, moto) did not start."""


class SourceChangedError(FerryError):
    """The source changed under the copy in a way it cannot follow (a table dropped)."""


class DatabaseError(FerryError):
    """Any other error reported by a server."""


class PlatformError(FerryError):
    """The app's platform (the Heroku Platform API or a local stand-in) refused or failed a request."""


class InfraError(FerryError):
    """Pulumi (the Automation API or its CLI) is missing or failed."""


class FollowerError(FerryError):
    """A background copy (the live Redis copy today) died, stalled or did not drain."""


class RunnerError(FerryError):
    """A data-plane task (a local child, an ECS task) could not be started, failed, or vanished."""


class RunbookError(FerryError):
    """A ``ferry run`` that cannot start or go on: another run holds the lock, a phase is unknown, …"""


class DifferencesFoundError(RunbookError):
    """A run's verify phase found the target different from the source; nothing was switched."""

    exit_code = 1


class SmokeFailedError(RunbookError):
    """A smoke URL did not answer 2xx/3xx after the switch."""


class ResumeError(FerryError):
    """``--resume`` found nothing to resume or a different copy."""


class CopyRunningError(FerryError):
    """Another copy holds the target (or a killed one's sessions cannot be ended)."""
