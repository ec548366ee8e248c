"""A small Heroku Platform API client: config vars, add-ons and attachments, maintenance, formation.

Base URL from ``HEROKU_API_URL`` (default ``https://api.heroku.com``), token from
``HEROKU_API_KEY``. Throttling (429) and server errors are retried with backoff; every other
failure becomes one :class:`~migration.errors.PlatformError` line, translated here only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from migration.errors import AuthenticationError, HostUnreachableError, PlatformError, UsageError
from migration.redact import register_secret

__all__ = ["DEFAULT_API_URL", "Addon", "Attachment", "HerokuClient", "ProcessCount"]

DEFAULT_API_URL = "https://api.heroku.com"
_ACCEPT = "application/vnd.heroku+json; version=3"


@dataclass(frozen=True)
class Addon:
    id: str
    name: str
    service: str


@dataclass(frozen=True)
class Attachment:
    id: str
    name: str
    addon_id: str
    addon_name: str


@dataclass(frozen=True)
class ProcessCount:
    type: str
    quantity: int


class _Retryable(Exception):
    def __init__(self, response: httpx.Response | None, cause: Exception | None = None) -> None:
        super().__init__(str(cause) if cause else f"HTTP {response.status_code if response else '?'}")
        self.response = response
        self.cause = cause


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(part, safe="") for part in parts)


class HerokuClient:
    """Calls the Platform API for one app's cutover. Use as a context manager.

    :param token: the API key; ``None`` reads ``HEROKU_API_KEY``.
    :param base_url: ``None`` reads ``HEROKU_API_URL``, else the public API.
    :param attempts: tries per request when Heroku throttles or fails (429, 5xx, network).
    """

    def __init__(
        self,
        token: str | None = None,
        base_url: str | None = None,
        *,
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        timeout: float = 30.0,
    ) -> None:
        token = token or os.environ.get("HEROKU_API_KEY")
        if not token:
            raise UsageError("HEROKU_API_KEY is not set: the Heroku Platform API needs a token")
        register_secret(token)
        self.base_url = (base_url or os.environ.get("HEROKU_API_URL") or DEFAULT_API_URL).rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Accept": _ACCEPT, "Authorization": f"Bearer {token}", "User-Agent": "ferry"},
            timeout=timeout,
        )
        self._send = retry(
            retry=retry_if_exception_type(_Retryable),
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=backoff_seconds, max=8),
            reraise=True,
        )(self._send_once)

    def __enter__(self) -> HerokuClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- config vars -------------------------------------------------------------------------
    def config_vars(self, app: str) -> dict[str, str]:
        return {key: str(value) for key, value in self._call("GET", _path("apps", app, "config-vars")).items()}

    def set_config_vars(self, app: str, changes: Mapping[str, str | None]) -> None:
        """Set (or, with ``None``, unset) config vars in one release."""
        self._call("PATCH", _path("apps", app, "config-vars"), json=dict(changes))

    # -- add-ons and attachments --------------------------------------------------------------
    def addons(self, app: str) -> list[Addon]:
        return [
            Addon(id=item["id"], name=item["name"], service=item["addon_service"]["name"])
            for item in self._list(_path("apps", app, "addons"))
        ]

    def attachments(self, app: str) -> list[Attachment]:
        return [_attachment(item) for item in self._list(_path("apps", app, "addon-attachments"))]

    def find_attachment(self, app: str, name: str) -> Attachment | None:
        return next((item for item in self.attachments(app) if item.name == name), None)

    def attach(self, app: str, addon: str, name: str) -> Attachment:
        """Attach an add-on (id or name) to the app under ``name`` (``DATABASE`` sets ``DATABASE_URL``)."""
        body = {"addon": addon, "app": app, "name": name}
        return _attachment(self._call("POST", "/addon-attachments", json=body))

    def detach(self, attachment_id: str) -> None:
        self._call("DELETE", _path("addon-attachments", attachment_id))

    # -- maintenance and formation ------------------------------------------------------------
    def maintenance(self, app: str) -> bool:
        return bool(self._call("GET", _path("apps", app))["maintenance"])

    def space(self, app: str) -> str | None:
        """The Private Space *app* runs in; ``None``: the Common Runtime."""
        space = self._call("GET", _path("apps", app)).get("space")
        return str(space["name"]) if isinstance(space, dict) and space.get("name") else None

    def set_maintenance(self, app: str, on: bool) -> None:
        self._call("PATCH", _path("apps", app), json={"maintenance": on})

    def formation(self, app: str) -> list[ProcessCount]:
        return [
            ProcessCount(type=item["type"], quantity=int(item["quantity"]))
            for item in self._list(_path("apps", app, "formation"))
        ]

    def scale(self, app: str, counts: Mapping[str, int]) -> None:
        if counts:
            updates = [{"type": kind, "quantity": quantity} for kind, quantity in counts.items()]
            self._call("PATCH", _path("apps", app, "formation"), json={"updates": updates})

    # -- transport ---------------------------------------------------------------------------
    def _call(self, method: str, path: str, json: Any = None) -> Any:
        response = self._respond(method, path, json, None)
        return response.json() if response.content else None

    def _list(self, path: str) -> list[Any]:
        """Every item of a list endpoint: Heroku answers 206 with ``Next-Range`` while more remain."""
        items: list[Any] = []
        next_range: str | None = None
        while True:
            response = self._respond("GET", path, None, next_range)
            items += response.json()
            next_range = response.headers.get("Next-Range")
            if response.status_code != 206 or not next_range:
                return items

    def _respond(self, method: str, path: str, json: Any, range_: str | None) -> httpx.Response:
        with _translated(method, path):
            response = self._send(method, path, json, range_)
        _raise_for_status(response, f"Heroku API {method} {path}")
        return response

    def _send_once(self, method: str, path: str, json: Any, range_: str | None) -> httpx.Response:
        try:
            headers = {"Range": range_} if range_ else None
            response = self._http.request(method, path, json=json, headers=headers)
        except (httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
            raise _Retryable(None, exc) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(response)
        return response


def _attachment(item: Mapping[str, Any]) -> Attachment:
    return Attachment(id=item["id"], name=item["name"], addon_id=item["addon"]["id"], addon_name=item["addon"]["name"])


@contextmanager
def _translated(method: str, path: str) -> Iterator[None]:
    """httpx failures and Heroku's error bodies → one :class:`PlatformError` line."""
    where = f"Heroku API {method} {path}"
    try:
        yield
    except _Retryable as exc:
        if exc.response is None:
            raise HostUnreachableError(f"{where}: {exc.cause}") from exc
        raise PlatformError(f"{where}: {_message(exc.response)} (gave up after retries)") from exc
    except httpx.TimeoutException as exc:
        raise HostUnreachableError(f"{where}: timed out") from exc
    except httpx.HTTPError as exc:
        raise PlatformError(f"{where}: {exc}") from exc


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return f"HTTP {response.status_code} {body.get('id', '')}: {body.get('message', '')}".rstrip(": ")
    except ValueError:
        return f"HTTP {response.status_code}"


def _raise_for_status(response: httpx.Response, where: str) -> None:
    if response.status_code in (401, 403):
        raise AuthenticationError(f"{where}: {_message(response)}")
    if response.status_code >= 400:
        raise PlatformError(f"{where}: {_message(response)}")
