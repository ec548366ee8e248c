"""An archive given as a URL (a PG Backups signed URL): downloaded to a file first, resumably.

The file lives in a directory of ferry's (``.ferry/dumps`` unless told otherwise), named after the
URL without its query (a signed URL's signature and expiry change each time one is made, the object
does not). While it downloads it is ``<name>.part``, beside ``<name>.json`` holding the server's
validators (``ETag``, ``Last-Modified``, length), written before the first byte: a download cut
short (a ``kill -9``, a lost connection) continues where it stopped with ``Range`` and ``If-Range``
when the server allows it, and starts over when it does not or when the object changed. A finished
file is used again only when the server still describes the same object.

Only ``GET`` is used, never ``HEAD``: a signed S3 URL is signed for one method. The URL's query is
never shown (it is the signature).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from migration.crashpoints import crashpoint
from migration.errors import PreconditionError
from migration.files import replace_file
from migration.postgres.dump.archive import archive_error
from migration.progress import ProgressSink

__all__ = ["DEFAULT_DIRECTORY", "download", "is_url", "shown"]

#: Where downloads go unless told otherwise (beside a run's state, ``.ferry/<stack>``).
DEFAULT_DIRECTORY = Path(".ferry") / "dumps"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def shown(url: str) -> str:
    """The URL without its query and fragment (a signed URL's query is its signature)."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _name(url: str) -> str:
    key = hashlib.sha256(shown(url).encode()).hexdigest()[:12]
    base = re.sub(r"[^A-Za-z0-9._-]", "_", Path(urlsplit(url).path).name)[:60] or "archive"
    return f"{key}-{base}"


def _validators(response: httpx.Response, total: int | None) -> dict[str, Any]:
    return {"etag": response.headers.get("etag"), "last_modified": response.headers.get("last-modified"),
            "length": total}  # fmt: skip


def _total(response: httpx.Response) -> int | None:
    match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
    if match and match.group(3) != "*":
        return int(match.group(3))
    if response.status_code == 200 and "content-length" in response.headers:
        return int(response.headers["content-length"])
    return None


def _same(saved: dict[str, Any], fresh: dict[str, Any]) -> bool:
    """The server describes the object the file holds (a strong ETag, else date and length, agree)."""
    if saved.get("length") is None or saved.get("length") != fresh.get("length"):
        return False
    if saved.get("etag") and fresh.get("etag"):
        return bool(saved["etag"] == fresh["etag"]) and not str(saved["etag"]).startswith("W/")
    return bool(saved.get("last_modified")) and saved.get("last_modified") == fresh.get("last_modified")


def _fail(url: str, what: str) -> PreconditionError:
    return archive_error(f"cannot download {shown(url)}: {what}")


def download(url: str, directory: Path, progress: ProgressSink, *, timeout: float = 60.0) -> Path:
    """The archive at *url*, as a file in *directory* (downloaded now, or earlier and unchanged since).

    :raises PreconditionError: the server answers with an error, or the connection fails.
    """
    name = _name(url)
    final, part, meta = directory / f"{name}.dump", directory / f"{name}.part", directory / f"{name}.json"
    saved: dict[str, Any] = {}
    if meta.exists():
        try:
            saved = dict(json.loads(meta.read_text()))
        except (OSError, ValueError):
            saved = {}
    try:
        with httpx.Client(follow_redirects=True, timeout=httpx.Timeout(timeout)) as client:
            if final.exists():
                with client.stream("GET", url, headers={"Range": "bytes=0-0"}) as probe:
                    _check(url, probe)
                    fresh = _validators(probe, _total(probe))
                if _same(saved, fresh) and final.stat().st_size == saved["length"]:
                    progress.message(f"using {final}, downloaded before from {shown(url)}")
                    return final
                final.unlink()
            _fetch(client, url, part, meta, saved, progress)
    except httpx.HTTPError as exc:
        detail = str(exc).replace(url, shown(url)) or type(exc).__name__
        raise _fail(url, detail) from None
    part.replace(final)
    return final


def _check(url: str, response: httpx.Response) -> None:
    if response.status_code in (200, 206, 416):
        return
    reason = response.reason_phrase or ""
    raise _fail(url, f"HTTP {response.status_code} {reason}".strip())


def _fetch(
    client: httpx.Client, url: str, part: Path, meta: Path, saved: dict[str, Any], progress: ProgressSink
) -> None:
    """Into *part*: continued from its end when the server can and the object is unchanged."""
    have = part.stat().st_size if part.exists() else 0
    headers: dict[str, str] = {}
    validator = saved.get("etag") or saved.get("last_modified")
    if have and validator and not str(validator).startswith("W/"):
        headers = {"Range": f"bytes={have}-", "If-Range": str(validator)}
    else:
        have = 0
    with client.stream("GET", url, headers=headers) as response:
        _check(url, response)
        total = _total(response)
        if response.status_code == 416:  # nothing left past what we have: the file is whole
            if total is not None and total == have:
                return
            raise _fail(url, "the server refused the range of a download begun earlier (remove it to start over)")
        start = 0
        if response.status_code == 206:
            match = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
            start = int(match.group(1)) if match else -1
            if start != have:
                raise _fail(url, f"the server sent bytes from {start}, not from {have}")
        if start:
            progress.message(f"downloading {shown(url)}: continuing after {have} bytes")
        else:
            progress.message(f"downloading {shown(url)}")
        part.parent.mkdir(parents=True, exist_ok=True)  # once the server answered: a refused URL leaves nothing
        replace_file(meta, json.dumps(_validators(response, total)))
        key = f"download {part.name}"
        progress.set_total(total or 0)
        progress.start_item(key, shown(url), total or 0, 0)
        progress.advance(key, 0, start)
        with open(part, "ab" if start else "wb") as out:
            for chunk in response.iter_bytes():  # as it arrives: a cut connection keeps what came
                out.write(chunk)
                progress.advance(key, 0, len(chunk))
                crashpoint("download-chunk")
            out.flush()
            os.fsync(out.fileno())
        size = part.stat().st_size
        if total is not None and size != total:
            raise _fail(url, f"the connection ended after {size} of {total} bytes (run again to continue)")
        progress.finish_item(key, f"downloaded {shown(url)}: {size} bytes")
