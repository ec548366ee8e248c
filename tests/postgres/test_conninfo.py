from __future__ import annotations

import pytest

from migration.errors import InvalidURLError
from migration.postgres.conninfo import parse_url
from migration.redact import redact, register_secret


def test_url_parts_and_display_hide_the_password() -> None:
    endpoint = parse_url("postgres://app:hunter2-pw@db.example.com:6543/shop?sslmode=require", "source")
    assert endpoint.dbname == "shop"
    assert endpoint.params["port"] == "6543"
    assert endpoint.params["sslmode"] == "require"
    assert endpoint.display == "app@db.example.com:6543/shop"
    assert "hunter2-pw" not in repr(endpoint)


def test_child_environment_carries_the_connection() -> None:
    env = parse_url("postgresql://app:pw-in-env@h:5433/d", "target").child_env()
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGDATABASE"]) == ("h", "5433", "app", "d")
    assert env["PGPASSWORD"] == "pw-in-env"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("", "no database URL"),
        ("mysql://u:p@h/db", "scheme"),
        ("postgres://u:p@h:notaport/db", "invalid port"),
        ("postgres://u:p@h:70000/db", "invalid port"),
        ("postgres://u:p@/db", "no host"),
        ("postgres://u:p@h:5432", "no database"),
        ("host=h port=5432 user=u password='unterminated", "malformed"),
    ],
)
def test_malformed_urls_are_refused_with_the_side_named(url: str, fragment: str) -> None:
    with pytest.raises(InvalidURLError) as info:
        parse_url(url, "target")
    assert str(info.value).startswith("target: ")
    assert fragment in str(info.value)
    assert "p@" not in str(info.value)


def test_redact_hides_url_passwords_and_registered_secrets() -> None:
    register_secret("sekrit-value-9")
    text = redact("failed for postgres://bob:pa55@host/db with sekrit-value-9 and password=abc123")
    assert "pa55" not in text and "sekrit-value-9" not in text and "abc123" not in text
    assert "postgres://bob:***@host/db" in text


def test_percent_encoded_password_is_registered() -> None:
    parse_url("postgres://u:p%40ss%2Fword@h/db", "source")
    assert "p@ss/word" not in redact("server said p@ss/word")
