"""Keeping secrets out of everything ferry prints, logs or stores.

Every password ferry learns (from a URL) is registered here; :func:`redact` replaces
each one, and the password part of any URL, by ``***``. The CLI, the progress display
and the error translation all pass text through it.
"""

from __future__ import annotations

import re
import threading

_lock = threading.Lock()
_secrets: set[str] = set()
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]*)@", re.I)
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.I)


def register_secret(secret: str | None) -> None:
    """Remember *secret* so that :func:`redact` hides it wherever it appears."""
    if secret and len(secret) >= 3:
        with _lock:
            _secrets.add(secret)


def redact(text: str) -> str:
    """Return *text* with every registered secret and URL password replaced by ``***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    text = _KEYWORD_PASSWORD.sub(r"\1***", text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    return text
