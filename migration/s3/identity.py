"""Do the source and target locations overlap? Asked before anything is copied or deleted.

A sync into a location inside its own source grows with every run (``s3://b/`` into
``s3://b/copy/`` copies ``copy/`` again), and ``--delete`` with the source inside the
target deletes the source. Keys are listed by plain string prefix, so two locations
overlap when they name the same bucket on the same service and one prefix starts with
the other. Endpoints are compared by where they lead, not by spelling: AWS's own names
are one service, and other endpoints are the same service when host addresses and port
agree. When in doubt the locations count as one: refusing costs a flag, deleting costs data.
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from migration.errors import SameStoreError
from migration.s3.client import S3Location

__all__ = ["locations_overlap", "refuse_overlap"]


def _service(endpoint_url: str | None) -> tuple[str, frozenset[str], int]:
    if endpoint_url is None:
        return ("aws", frozenset(), 443)
    parts = urlsplit(endpoint_url)
    host = (parts.hostname or "").lower()
    if host == "amazonaws.com" or host.endswith(".amazonaws.com"):
        return ("aws", frozenset(), 443)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = frozenset(str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP))
    except OSError:
        addresses = frozenset()
    loopback = {a for a in addresses if a.startswith("127.") or a == "::1"}
    # localhost and 127.0.0.1 lead to one server even where one name also resolves to ::1.
    return ("other", frozenset({"loopback"}) if loopback else (addresses or frozenset({host})), port)


def _same_service(source_endpoint: str | None, target_endpoint: str | None) -> bool:
    a, b = _service(source_endpoint), _service(target_endpoint)
    if a[0] != b[0]:
        return False
    if a[0] == "aws":
        return True
    return a[2] == b[2] and bool(a[1] & b[1])


def locations_overlap(
    source: S3Location, target: S3Location, source_endpoint: str | None, target_endpoint: str | None
) -> bool:
    """True when one location's keys are (partly) the other's."""
    if source.bucket != target.bucket or not _same_service(source_endpoint, target_endpoint):
        return False
    return source.prefix.startswith(target.prefix) or target.prefix.startswith(source.prefix)


def refuse_overlap(
    source: S3Location, target: S3Location, source_endpoint: str | None, target_endpoint: str | None
) -> None:
    """:raises SameStoreError: when the target overlaps the source."""
    if locations_overlap(source, target, source_endpoint, target_endpoint):
        raise SameStoreError(
            f"{target} overlaps the source {source} (one prefix holds the other): a sync would copy into "
            "its own source, and --delete would delete source objects",
            side="target",
        )
