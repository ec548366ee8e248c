"""The fence's passage: only a session holding it writes past the fence, unlogged; nobody can read it back."""

from __future__ import annotations

import psycopg
import pytest

from migration.postgres.capture import (
    CaptureSettings,
    ensure_capture,
    fence_with_passage,
    lower_fence,
    new_salt,
    passage_digest,
    passage_token,
    with_passage,
)
from tests.conftest import Database

SCHEMA = """
CREATE TABLE orders (id int PRIMARY KEY, note text);
CREATE TABLE no_key (v text);
INSERT INTO orders SELECT g, 'o' || g FROM generate_series(1, 10) g;
"""


def test_only_the_passage_writes_past_the_fence_and_its_writes_are_not_logged(source_db: Database) -> None:
    source_db.execute(SCHEMA)
    ensure_capture(source_db.url)
    token = passage_token(source_db.url, new_salt())
    with psycopg.connect(source_db.url, autocommit=True) as conn:
        fence_with_passage(conn, passage_digest(token))
        source = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'passes'").fetchone()
        assert source is not None and token not in source[0] and passage_digest(token) in source[0]
    wrong = with_passage(source_db.url, "0" * 64)
    for url in (source_db.url, wrong):  # no passage, a guessed one
        with psycopg.connect(url, autocommit=True) as stray:
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ferry fence"):
                stray.execute("UPDATE orders SET note = 'stray' WHERE id = 1")
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ferry fence"):
                stray.execute("INSERT INTO no_key VALUES ('stray')")
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="ferry fence"):
                stray.execute("TRUNCATE orders")
    with psycopg.connect(with_passage(source_db.url, token), autocommit=True) as follower:
        follower.execute("UPDATE orders SET note = 'followed back' WHERE id = 1")
        follower.execute("INSERT INTO no_key VALUES ('followed back')")
        follower.execute("DELETE FROM orders WHERE id = 2")
    assert source_db.scalar("SELECT note FROM orders WHERE id = 1") == "followed back"
    assert source_db.scalar("SELECT count(*) FROM ferry_capture.log") == 0  # neither refused nor logged
    # The role's read-only default (the read-only freeze) does not hold the passage's session either.
    source_db.execute(f"ALTER ROLE CURRENT_USER IN DATABASE {source_db.name} SET default_transaction_read_only = on")
    try:
        with psycopg.connect(with_passage(source_db.url, token), autocommit=True) as follower:
            follower.execute("UPDATE orders SET note = 'read-only role' WHERE id = 3")
    finally:
        source_db.execute(
            "BEGIN READ WRITE; "
            f"ALTER ROLE CURRENT_USER IN DATABASE {source_db.name} RESET default_transaction_read_only; COMMIT"
        )
    with psycopg.connect(source_db.url, autocommit=True) as conn:
        lower_fence(conn, CaptureSettings())  # and with the fence, the passage goes
        conn.execute("UPDATE orders SET note = 'the app again' WHERE id = 4")
    with psycopg.connect(with_passage(source_db.url, token), autocommit=True) as follower:
        follower.execute("UPDATE orders SET note = 'logged like anyone' WHERE id = 5")
    assert source_db.scalar("SELECT count(*) FROM ferry_capture.log") == 2


def test_a_passage_is_the_password_s_and_the_run_s(source_db: Database) -> None:
    salt = new_salt()
    assert passage_token(source_db.url, salt) == passage_token(source_db.url, salt)
    assert passage_token(source_db.url, salt) != passage_token(source_db.url, new_salt())
    other = source_db.url.replace(source_db.cluster.password, "another-password")
    assert passage_token(other, salt) != passage_token(source_db.url, salt)
    url = with_passage("postgresql://u:p@h:5/d?sslmode=require&options=-c%20search_path%3Dx", "t0k")
    assert "sslmode=require" in url and "search_path%3Dx" in url and "ferry.passage%3Dt0k" in url
