"""The fence's one way through, for ferry's follower writing back into an old database.

After the switch the old database stays fenced: a dyno still on its URL must not write where nobody
reads. Yet the follow back must write there, and on Heroku neither a superuser nor
``session_replication_role`` is to be had, and the follower connects as the very role the app does.
So the fence tells sessions apart by what they hold, not by who they are: a fenced function lets a
session through when its ``ferry.passage`` setting hashes to the digest written into
``ferry_capture.passes()`` (:func:`~.sql.passage_function`), and such a session's writes are neither
refused nor logged. The passage is an HMAC of the old database's own password and a salt kept in the
run's state: it never sits in a file, each run has its own, and only the digest is in the catalog
(which every role can read). It reaches the server in the connection's startup options, with
``default_transaction_read_only`` off for the read-only freeze's role setting.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from migration.redact import register_secret

__all__ = ["new_salt", "passage_digest", "passage_token", "with_passage"]


def new_salt() -> str:
    """A run's own salt (kept in its state: it is no secret without the password)."""
    return secrets.token_hex(16)


def passage_token(url: str, salt: str) -> str:
    """The passage for the database of *url*, derived again whenever it is needed (never stored)."""
    parts = urlsplit(url)
    key = (parts.password or url).encode()
    token = hmac.new(key, salt.encode(), hashlib.sha256).hexdigest()
    register_secret(token)
    return token


def passage_digest(token: str) -> str:
    """What the catalog holds of a passage (``md5``, which every supported major has)."""
    return hashlib.md5(token.encode(), usedforsecurity=False).hexdigest()


def with_passage(url: str, token: str) -> str:
    """*url* whose sessions hold the passage and are not read-only by their role's default."""
    return _with_options(url, f"-c ferry.passage={token} -c default_transaction_read_only=off")


def _with_options(url: str, more: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = " ".join(value for key, value in query if key == "options")
    kept = [(key, value) for key, value in query if key != "options"] + [("options", f"{options} {more}".strip())]
    return urlunsplit(parts._replace(query=urlencode(kept, quote_via=quote)))
