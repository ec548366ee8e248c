"""The Heroku Platform API client and the cutover sequence, against the schema-validating fake."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from migration.errors import AuthenticationError, HostUnreachableError, PlatformError, UsageError
from migration.platform.cutover import MovedAddon, alias, rollback, switch
from migration.platform.heroku import HerokuClient
from migration.platform.rollbackvars import ROLLBACK_VAR
from stacks.cutover import _DetachProvider
from tests.support.fake_heroku import FakeHeroku, running_fake_heroku

OLD_DB = "postgres://u:oldsecret@old-db.example.com:5432/d1"
NEW_DB = "postgres://shop_app:newsecret@target.example.com:5432/shop"
DATABASE = MovedAddon(addon="postgresql-curly-12345", attachment="DATABASE", rollback_alias="HEROKU_POSTGRES_DB")


@pytest.fixture
def heroku() -> Iterator[tuple[FakeHeroku, HerokuClient]]:
    with running_fake_heroku() as (fake, url):
        fake.add_app("shop", config={"RAILS_ENV": "production"}, formation={"web": 2, "worker": 3})
        fake.add_addon("shop", "postgresql-curly-12345", "heroku-postgresql", OLD_DB, attach_as="DATABASE")
        with HerokuClient(fake.token, url, backoff_seconds=0.01) as client:
            yield fake, client
        assert fake.violations == []


def test_reads_config_addons_attachments_and_formation(heroku: tuple[FakeHeroku, HerokuClient]) -> None:
    fake, client = heroku
    assert client.config_vars("shop") == {"RAILS_ENV": "production", "DATABASE_URL": OLD_DB}
    [addon] = client.addons("shop")
    assert (addon.name, addon.service) == ("postgresql-curly-12345", "heroku-postgresql")
    attachment = client.find_attachment("shop", "DATABASE")
    assert attachment is not None and attachment.addon_name == addon.name
    assert {p.type: p.quantity for p in client.formation("shop")} == {"web": 2, "worker": 3}
    assert client.maintenance("shop") is False
    client.set_maintenance("shop", True)
    client.scale("shop", {"worker": 0})
    assert fake.apps["shop"].maintenance is True and fake.apps["shop"].formation == {"web": 2, "worker": 0}


def test_alias_switch_and_rollback_in_the_order_heroku_requires(heroku: tuple[FakeHeroku, HerokuClient]) -> None:
    fake, client = heroku
    client.set_config_vars("shop", {"S3_BUCKET": "shop-uploads-heroku", "AWS_ACCESS_KEY_ID": "OLDKEY"})
    before = len(fake.calls())
    assert alias(client, "shop", [DATABASE]) == 1
    config = client.config_vars("shop")
    # While live the app keeps its DATABASE_URL: the alias is one release, the detach waits for the freeze.
    assert config["HEROKU_POSTGRES_DB_URL"] == OLD_DB and config["DATABASE_URL"] == OLD_DB
    new_vars = {"DATABASE_URL": NEW_DB, "S3_BUCKET": "shop-production-uploads", "AWS_REGION": "us-east-1"}
    assert switch(client, "shop", new_vars, [DATABASE]) == 2  # the detach, then every variable in one release
    config = client.config_vars("shop")
    assert {name: config[name] for name in new_vars} == new_vars
    kept = json.loads(config[ROLLBACK_VAR])
    assert kept == {"run": None, "vars": {"S3_BUCKET": "shop-uploads-heroku", "AWS_REGION": None}}
    assert switch(client, "shop", new_vars, [DATABASE]) == 1  # again, after a crash: the kept values stay
    assert json.loads(client.config_vars("shop")[ROLLBACK_VAR])["vars"]["S3_BUCKET"] == "shop-uploads-heroku"
    assert alias(client, "shop", [DATABASE]) == 0  # again, after a crash: nothing more to do
    rollback(client, "shop", [DATABASE])
    config = client.config_vars("shop")
    assert config["DATABASE_URL"] == OLD_DB and config["S3_BUCKET"] == "shop-uploads-heroku"
    assert "AWS_REGION" not in config and ROLLBACK_VAR not in config and config["AWS_ACCESS_KEY_ID"] == "OLDKEY"
    assert {a.name for a in client.attachments("shop")} == {"DATABASE", "HEROKU_POSTGRES_DB"}
    writes = [(method, path.split("/")[1]) for method, path, _ in fake.calls()[before:]]
    assert writes == [
        ("POST", "addon-attachments"),  # the alias, while live
        ("DELETE", "addon-attachments"),  # inside the freeze: DATABASE detached …
        ("PATCH", "apps"),  # … and right after it, DATABASE_URL and the buckets' variables → target
        ("PATCH", "apps"),  # the same again (the crashed run's second try): one release, nothing else
        ("PATCH", "apps"),  # rollback: DATABASE_URL unset, the bucket variables put back
        ("POST", "addon-attachments"),  # DATABASE again
    ]


def test_the_switch_refuses_to_detach_an_add_on_with_no_rollback_alias(heroku: tuple[FakeHeroku, HerokuClient]) -> None:
    fake, client = heroku
    with pytest.raises(PlatformError, match="postgresql-curly-12345 is not attached as HEROKU_POSTGRES_DB"):
        switch(client, "shop", {"DATABASE_URL": NEW_DB}, [DATABASE])
    assert client.find_attachment("shop", "DATABASE") is not None and fake.calls() == []


def test_the_fake_refuses_database_url_while_attached(heroku: tuple[FakeHeroku, HerokuClient]) -> None:
    _, client = heroku
    with pytest.raises(
        PlatformError,
        match=r"^Heroku API PATCH /apps/shop/config-vars: HTTP 422 invalid_params: Cannot overwrite attachment values DATABASE_URL$",
    ):
        client.set_config_vars("shop", {"DATABASE_URL": NEW_DB})


def test_a_detach_of_someone_elses_attachment_is_refused(heroku: tuple[FakeHeroku, HerokuClient]) -> None:
    fake, client = heroku
    with pytest.raises(PlatformError, match="DATABASE is attached to postgresql-curly-12345, not postgresql-other-1"):
        alias(client, "shop", [MovedAddon("postgresql-other-1", "DATABASE", "HEROKU_POSTGRES_DB")])
    assert client.find_attachment("shop", "DATABASE") is not None
    assert fake.calls() == []  # refused before any change


def test_throttling_and_server_errors_are_retried(heroku: tuple[FakeHeroku, HerokuClient]) -> None:
    fake, client = heroku
    fake.fail_next = [429, 503, 429]
    assert client.maintenance("shop") is False
    assert [r.status for r in fake.requests] == [429, 503, 429, 200]
    fake.fail_next = [503] * 5
    with pytest.raises(PlatformError, match=r"HTTP 503 unavailable: try again \(gave up after retries\)"):
        client.maintenance("shop")


def test_bad_token_missing_token_and_unreachable_api_are_one_line() -> None:
    with running_fake_heroku() as (fake, url):
        fake.add_app("shop")
        with HerokuClient("wrong-token-abcdef", url) as client, pytest.raises(AuthenticationError) as raised:
            client.config_vars("shop")
        assert str(raised.value) == (
            "Heroku API GET /apps/shop/config-vars: HTTP 401 unauthorized: Invalid credentials provided."
        )
    with pytest.raises(UsageError, match="HEROKU_API_KEY is not set"):
        HerokuClient(None, "http://127.0.0.1:9")
    with HerokuClient("t0ken-abcdef", "http://127.0.0.1:9", attempts=2, backoff_seconds=0.01) as client:
        with pytest.raises(HostUnreachableError) as unreachable:
            client.config_vars("shop")
        assert "t0ken" not in str(unreachable.value) and "\n" not in str(unreachable.value)


def test_the_stacks_detach_step_calls_the_platform_api(
    heroku: tuple[FakeHeroku, HerokuClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, client = heroku
    monkeypatch.setenv("HEROKU_API_KEY", fake.token)
    monkeypatch.setenv("HEROKU_API_URL", client.base_url)
    client.attach("shop", "postgresql-curly-12345", "HEROKU_POSTGRES_DB")
    props = {"app": "shop", "attachment": "DATABASE", "addon": "postgresql-curly-12345"}
    created = _DetachProvider().create(props)
    assert created.id == "shop/DATABASE"
    assert {a.name for a in client.attachments("shop")} == {"HEROKU_POSTGRES_DB"}
    _DetachProvider().create(props)  # already detached: nothing to do, no error


def test_lists_are_read_past_heroku_pages(heroku: tuple[FakeHeroku, HerokuClient]) -> None:
    fake, client = heroku
    for n in range(4):
        fake.add_addon("shop", f"papertrail-{n}", "papertrail", f"https://logs/{n}", attach_as=f"LOGS_{n}")
    fake.page_size = 2
    names = {attachment.name for attachment in client.attachments("shop")}
    assert names == {"DATABASE", "LOGS_0", "LOGS_1", "LOGS_2", "LOGS_3"}
    pages = [r.status for r in fake.requests if r.path.endswith("/addon-attachments")]
    assert pages == [206, 206, 200]
    assert len(client.addons("shop")) == 5
