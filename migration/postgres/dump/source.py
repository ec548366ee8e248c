"""The ``--from-dump`` source: a file, or a URL downloaded to one, read and checked as an archive."""

from __future__ import annotations

from pathlib import Path

from migration.postgres.copy.tools import ClientTools, find_client_tools
from migration.postgres.dump.archive import Archive, read_archive
from migration.postgres.dump.download import DEFAULT_DIRECTORY, download, is_url
from migration.progress import ProgressSink

__all__ = ["open_dump"]


def open_dump(
    source: str, progress: ProgressSink, download_dir: Path | None = None
) -> tuple[ClientTools, Archive, bool]:
    """The client programs, the checked archive, and whether it was given as a URL.

    The pg_restore is the newest found (``FERRY_PG_BINDIR`` picks one): it reads every older archive,
    and ferry applies its SQL itself, leaving out what an older target does not know.

    :raises PreconditionError: not a readable, complete ``pg_dump -Fc`` archive, or a URL that cannot be downloaded.
    """
    tools = find_client_tools()
    path = Path(source).expanduser()
    if is_url(source):
        path = download(source, download_dir or DEFAULT_DIRECTORY, progress)
    return tools, read_archive(path, tools), is_url(source)
