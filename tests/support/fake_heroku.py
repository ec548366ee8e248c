"""A local Heroku Platform API that validates every request and response against Heroku's schema.

Routes come from the schema's own links (``../shared/heroku-platform-api-schema.json``): a
request that matches no link is a 404, a body that breaks the link's ``schema`` a 422, and a
response that breaks its ``targetSchema`` is recorded in :attr:`FakeHeroku.violations` (tests
assert there are none). It keeps the Heroku rules the cutover depends on: an attachment named
``X`` sets ``X_URL`` and refuses to when ``X_URL`` is an ordinary config var; ``X_URL`` cannot
be set or unset while ``X`` is attached; detaching removes ``X_URL``.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema

# A copy of heroku/platform-api's published schema (MIT, see heroku-platform-api-schema.LICENSE.md).
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "data" / "heroku-platform-api-schema.json"
ACCEPT = "application/vnd.heroku+json; version=3"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: Any
    status: int


@dataclass
class _Link:
    definition: str
    title: str
    method: str
    pattern: re.Pattern[str]
    schema: dict[str, Any] | None
    target: dict[str, Any] | None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _HttpError(Exception):
    def __init__(self, status: int, id_: str, message: str) -> None:
        super().__init__(message)
        self.status, self.id, self.message = status, id_, message


@dataclass
class _Addon:
    id: str
    name: str
    service: str
    url: str


@dataclass
class _App:
    id: str
    name: str
    maintenance: bool = False
    config: dict[str, str] = field(default_factory=dict)
    formation: dict[str, int] = field(default_factory=dict)
    #: The Private Space the app runs in (``None``: the Common Runtime).
    space: str | None = None


class FakeHeroku:
    """The state of one fake Heroku account, and the requests it received."""

    def __init__(self, token: str) -> None:
        self.token = token
        document = json.loads(SCHEMA_PATH.read_text())
        self._definitions = document["definitions"]
        self._links = [
            _Link(
                definition=name,
                title=link["title"],
                method=link["method"],
                pattern=re.compile("^" + re.sub(r"\{\([^}]*\)\}", "([^/]+)", link["href"]) + "$"),
                schema=link.get("schema"),
                target=link.get("targetSchema"),
            )
            for name, definition in self._definitions.items()
            for link in definition.get("links", [])
        ]
        self.apps: dict[str, _App] = {}
        self.addons: dict[str, _Addon] = {}
        self.attachments: dict[str, dict[str, str]] = {}  # id → {app, addon, name}
        self.requests: list[Request] = []
        self.violations: list[str] = []
        self.fail_next: list[int] = []  # statuses to answer the next requests with (429, 503, …)
        self.page_size = 200  # list endpoints answer 206 with Next-Range beyond this, as Heroku does
        self.hold: dict[tuple[str, str], threading.Event] = {}  # (method, path regex) → released when set
        self.lock = threading.Lock()

    # -- set-up ----------------------------------------------------------------------------
    def add_app(
        self,
        name: str,
        config: dict[str, str] | None = None,
        formation: dict[str, int] | None = None,
        space: str | None = None,
    ) -> None:
        self.apps[name] = _App(str(uuid.uuid4()), name, config=dict(config or {}), formation=dict(formation or {}),
                               space=space)  # fmt: skip

    def add_addon(self, app: str, name: str, service: str, url: str, attach_as: str) -> str:
        addon = _Addon(str(uuid.uuid4()), name, service, url)
        self.addons[addon.id] = addon
        self._attach(self.apps[app], addon, attach_as)
        return addon.id

    def calls(self, *, writes_only: bool = True) -> list[tuple[str, str, Any]]:
        return [
            (r.method, r.path, r.body)
            for r in self.requests
            if r.status < 400 and (r.method != "GET" or not writes_only)
        ]

    # -- rules -----------------------------------------------------------------------------
    def _attach(self, app: _App, addon: _Addon, name: str) -> dict[str, str]:
        var = f"{name}_URL"
        if any(a["app"] == app.id and a["name"] == name for a in self.attachments.values()):
            raise _HttpError(422, "invalid_params", f"Name {name} is already used by another attachment")
        if var in app.config:
            raise _HttpError(422, "invalid_params", f"{var} is already set as a config var; unset it first")
        attachment = {"id": str(uuid.uuid4()), "app": app.id, "addon": addon.id, "name": name, "created_at": _now()}
        self.attachments[attachment["id"]] = attachment
        app.config[var] = addon.url
        return attachment

    def _attached_vars(self, app: _App) -> set[str]:
        return {f"{a['name']}_URL" for a in self.attachments.values() if a["app"] == app.id}

    # -- resources as the schema describes them ------------------------------------------------
    def _app_json(self, app: _App) -> dict[str, Any]:
        return {
            "id": app.id,
            "name": app.name,
            "maintenance": app.maintenance,
            "created_at": _now(),
            "updated_at": _now(),
            "released_at": _now(),
            "web_url": f"https://{app.name}.herokuapp.com/",
            "git_url": f"https://git.heroku.com/{app.name}.git",
            "generation": {"id": str(uuid.uuid4()), "name": "cedar"},
            "acm": False,
            "archived_at": None,
            "buildpack_provided_description": None,
            "build_stack": {"id": str(uuid.uuid4()), "name": "heroku-24"},
            "stack": {"id": str(uuid.uuid4()), "name": "heroku-24"},
            "internal_routing": None,
            "owner": {"email": "owner@example.com", "id": str(uuid.uuid4())},
            "organization": None,
            "team": None,
            "space": {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, app.space)), "name": app.space, "shield": False}
            if app.space
            else None,
            "region": {"id": str(uuid.uuid4()), "name": "us"},
            "repo_size": None,
            "slug_size": None,
        }

    def _addon_json(self, addon: _Addon, app: _App) -> dict[str, Any]:
        return {
            "actions": [],
            "addon_service": {"id": str(uuid.uuid4()), "name": addon.service},
            "billing_entity": {"id": app.id, "name": app.name, "type": "app"},
            "app": {"id": app.id, "name": app.name},
            "billed_price": None,
            "config_vars": ["DATABASE_URL" if addon.service == "heroku-postgresql" else "REDIS_URL"],
            "created_at": _now(),
            "updated_at": _now(),
            "id": addon.id,
            "name": addon.name,
            "plan": {"id": str(uuid.uuid4()), "name": f"{addon.service}:standard-0"},
            "provider_id": addon.name,
            "state": "provisioned",
            "web_url": None,
        }

    def _attachment_json(self, attachment: dict[str, str]) -> dict[str, Any]:
        app = next(a for a in self.apps.values() if a.id == attachment["app"])
        addon = self.addons[attachment["addon"]]
        return {
            "addon": {"id": addon.id, "name": addon.name, "app": {"id": app.id, "name": app.name}},
            "app": {"id": app.id, "name": app.name},
            "created_at": attachment["created_at"],
            "updated_at": attachment["created_at"],
            "id": attachment["id"],
            "name": attachment["name"],
            "namespace": None,
            "web_url": None,
            "log_input_url": None,
        }

    def _formation_json(self, app: _App) -> list[dict[str, Any]]:
        return [
            {
                "app": {"id": app.id, "name": app.name},
                "command": f"bin/{kind}",
                "created_at": _now(),
                "updated_at": _now(),
                "dyno_size": {"id": str(uuid.uuid4()), "name": "standard-1X"},
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, app.id + kind)),
                "quantity": quantity,
                "size": "standard-1X",
                "type": kind,
            }
            for kind, quantity in sorted(app.formation.items())
        ]

    # -- dispatch --------------------------------------------------------------------------
    def _app(self, identity: str) -> _App:
        for app in self.apps.values():
            if identity in (app.id, app.name):
                return app
        raise _HttpError(404, "not_found", f"Couldn't find that app: {identity}")

    def _addon(self, identity: str) -> _Addon:
        for addon in self.addons.values():
            if identity in (addon.id, addon.name):
                return addon
        raise _HttpError(404, "not_found", f"Couldn't find that add-on: {identity}")

    def handle(self, link: _Link, params: list[str], body: Any) -> tuple[int, Any]:
        key = (link.definition, link.method, link.title)
        if key == ("app", "GET", "Info"):
            return 200, self._app_json(self._app(params[0]))
        if key == ("app", "PATCH", "Update"):
            app = self._app(params[0])
            if "maintenance" in body:
                app.maintenance = bool(body["maintenance"])
            return 200, self._app_json(app)
        if key == ("config-var", "GET", "Info for App"):
            return 200, dict(self._app(params[0]).config)
        if key == ("config-var", "PATCH", "Update"):
            app = self._app(params[0])
            locked = sorted(set(body) & self._attached_vars(app))
            if locked:
                raise _HttpError(422, "invalid_params", f"Cannot overwrite attachment values {', '.join(locked)}")
            for var, value in body.items():
                if value is None:
                    app.config.pop(var, None)
                else:
                    app.config[var] = value
            return 200, dict(app.config)
        if key == ("add-on", "GET", "List By App"):
            app = self._app(params[0])
            ids = {a["addon"] for a in self.attachments.values() if a["app"] == app.id}
            return 200, [self._addon_json(self.addons[i], app) for i in sorted(ids)]
        if key == ("add-on-attachment", "GET", "List by App"):
            app = self._app(params[0])
            return 200, [self._attachment_json(a) for a in self.attachments.values() if a["app"] == app.id]
        if key == ("add-on-attachment", "GET", "Info by App"):
            app = self._app(params[0])
            for attachment in self.attachments.values():
                if attachment["app"] == app.id and params[1] in (attachment["name"], attachment["id"]):
                    return 200, self._attachment_json(attachment)
            raise _HttpError(404, "not_found", f"Couldn't find that add-on attachment: {params[1]}")
        if key == ("add-on-attachment", "POST", "Create"):
            app = self._app(body["app"])
            return 201, self._attachment_json(self._attach(app, self._addon(body["addon"]), body["name"]))
        if key == ("add-on-attachment", "DELETE", "Delete"):
            attachment = self.attachments.get(params[0])
            if attachment is None:
                raise _HttpError(404, "not_found", "Couldn't find that add-on attachment")
            shown = self._attachment_json(attachment)
            del self.attachments[params[0]]
            self._app(attachment["app"]).config.pop(f"{attachment['name']}_URL", None)
            return 200, shown
        if key == ("formation", "GET", "List"):
            return 200, self._formation_json(self._app(params[0]))
        if key == ("formation", "PATCH", "Batch Update"):
            app = self._app(params[0])
            for update in body["updates"]:
                if update["type"] not in app.formation:
                    raise _HttpError(404, "not_found", f"Couldn't find that process type ({update['type']})")
                app.formation[update["type"]] = int(update.get("quantity", app.formation[update["type"]]))
            return 200, self._formation_json(app)
        raise _HttpError(
            501, "not_implemented", f"the fake does not serve {link.method} {link.title} of {link.definition}"
        )

    def route(self, method: str, path: str) -> tuple[_Link, list[str]]:
        for link in self._links:
            if link.method == method:
                match = link.pattern.match(path)
                if match:
                    return link, [unquote(group) for group in match.groups()]
        raise _HttpError(404, "not_found", f"no such route in Heroku's schema: {method} {path}")

    def page(
        self, items: list[dict[str, Any]], range_header: str | None
    ) -> tuple[int, list[dict[str, Any]], str | None]:
        """One page of a list, by id, as Heroku pages them: ``Range: id ]LAST..; max=N``."""
        ordered = sorted(items, key=lambda item: str(item["id"]))
        size, start = self.page_size, 0
        match = re.match(r"id \]?([^.;]*)\.\.(?:; *max=(\d+))?", range_header or "")
        if match:
            if match.group(1):
                start = next((i for i, item in enumerate(ordered) if str(item["id"]) > match.group(1)), len(ordered))
            size = int(match.group(2) or size)
        chunk = ordered[start : start + size]
        if start + size < len(ordered):
            return 206, chunk, f"id ]{chunk[-1]['id']}..; max={size}"
        return 200, chunk, None

    def check(self, schema: dict[str, Any] | None, instance: Any, what: str) -> str | None:
        if schema is None:
            return None
        validator = jsonschema.Draft4Validator(
            {**schema, "definitions": self._definitions}, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
        )
        error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
        return None if error is None else f"{what}: {error.message} at {list(error.absolute_path)}"


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHeroku

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        fake = self.fake
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body: Any = json.loads(raw) if raw else None
        for (method, pattern), released in list(fake.hold.items()):
            if method == self.command and re.search(pattern, path):
                released.wait(60)
        status, reply = 500, {"id": "internal", "message": "fake failed"}
        next_range: str | None = None
        try:
            if self.headers.get("Authorization") != f"Bearer {fake.token}":
                raise _HttpError(401, "unauthorized", "Invalid credentials provided.")
            if self.headers.get("Accept") != ACCEPT:
                raise _HttpError(406, "not_acceptable", f"Accept must be {ACCEPT}")
            with fake.lock:
                if fake.fail_next:
                    failing = fake.fail_next.pop(0)
                    raise _HttpError(failing, "rate_limit" if failing == 429 else "unavailable", "try again")
                link, params = fake.route(self.command, path)
                problem = fake.check(link.schema, body if body is not None else {}, f"request {self.command} {path}")
                if problem:
                    fake.violations.append(problem)
                    raise _HttpError(422, "invalid_params", problem)
                status, reply = fake.handle(link, params, body)
                if isinstance(reply, list):
                    status, reply, next_range = fake.page(reply, self.headers.get("Range"))
                problem = fake.check(link.target, reply, f"response {self.command} {path}")
                if problem:
                    fake.violations.append(problem)
        except _HttpError as exc:
            status, reply = exc.status, {"id": exc.id, "message": exc.message}
        fake.requests.append(Request(self.command, path, body, status))
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if next_range:
            self.send_header("Next-Range", next_range)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-request (the crash tests do that) is not the fake's error; anything else is.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def running_fake_heroku(token: str = "test-heroku-token-0123456789") -> Iterator[tuple[FakeHeroku, str]]:
    """A fake Heroku on a free port: yields the fake and its base URL."""
    fake = FakeHeroku(token)
    handler = type("Handler", (_Handler,), {"fake": fake})
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        for released in fake.hold.values():
            released.set()
        server.shutdown()
        server.server_close()
        time.sleep(0)
