"""What an attack may use (:class:`Ctx`), and the attacks' steps that take more than a few statements."""

from __future__ import annotations

import contextlib
import random
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench.chaos.ferry_driver import Ferry


@dataclass
class Ctx:
    """What an attack may use: the app role's and a superuser's URL of the source, and its notes."""

    app: str
    superuser: str
    ferry: Ferry | None = None
    target: str = ""
    work: Path = Path(tempfile.gettempdir())
    keep: list[psycopg.Connection[Any]] = field(default_factory=list)
    said: list[str] = field(default_factory=list)

    def run(self, url: str, *statements: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def attempt(self, url: str, statement: str) -> None:
        """A write that should be refused: note whether it was."""
        try:
            self.run(url, statement)
            self.said.append(f"went through: {statement}")
        except psycopg.Error as exc:
            self.said.append(f"refused ({type(exc).__name__}): {statement.split()[0]}")


Hook = Callable[[Ctx], None]


def our_triggers(ctx: Ctx, table: str) -> list[str]:
    with psycopg.connect(ctx.superuser, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE t.tgrelid = %s::regclass AND NOT t.tgisinternal AND n.nspname LIKE '%%ferry%%'",
            (table,),
        ).fetchall()
    return [str(r[0]) for r in rows]


def disable_capture_trigger(ctx: Ctx) -> None:
    names = our_triggers(ctx, "items")
    ctx.said.append(f"capture's triggers on items: {names}")
    with psycopg.connect(ctx.app, autocommit=True) as conn, conn.transaction():
        for name in names:
            conn.execute(f'ALTER TABLE items DISABLE TRIGGER "{name}"')
        conn.execute("UPDATE items SET note = 'trigger disabled' WHERE id <= 10")
        conn.execute("DELETE FROM items WHERE id = 11")
        for name in names:
            conn.execute(f'ALTER TABLE items ENABLE TRIGGER "{name}"')


def prepare(ctx: Ctx) -> None:
    conn = psycopg.connect(ctx.app, autocommit=True)
    conn.execute("BEGIN")
    conn.execute("UPDATE items SET note = 'prepared before the fence' WHERE id <= 5")
    conn.execute("PREPARE TRANSACTION 'chaos_p1'")
    conn.close()


def commit_prepared(ctx: Ctx) -> None:
    try:
        ctx.run(ctx.app, "COMMIT PREPARED 'chaos_p1'")
        ctx.said.append("COMMIT PREPARED went through after the drain")
    except psycopg.Error as exc:
        ctx.said.append(f"COMMIT PREPARED refused: {exc}")


def rollback_prepared(ctx: Ctx) -> None:
    with contextlib.suppress(psycopg.Error):
        ctx.run(ctx.superuser, "ROLLBACK PREPARED 'chaos_p1'")


def superuser_open(ctx: Ctx) -> None:
    conn = psycopg.connect(ctx.superuser)
    conn.execute("UPDATE items SET note = 'superuser, open across the fence' WHERE id = 1")
    ctx.keep.append(conn)


def superuser_commit(ctx: Ctx) -> None:
    for conn in ctx.keep:
        try:
            conn.commit()
            ctx.said.append("the transaction open across the fence committed after the drain")
        except psycopg.Error as exc:
            ctx.said.append(f"the superuser's transaction was ended: {type(exc).__name__}")


def other_credential_open(ctx: Ctx) -> None:
    """A second login role, as Heroku's additional credentials are, that the app lets write."""
    with psycopg.connect(ctx.superuser, autocommit=True) as conn:
        db = conn.info.dbname
        conn.execute(f"CREATE ROLE \"cred_{db}\" LOGIN PASSWORD 'cred-pw'")
    ctx.run(ctx.app, f'GRANT SELECT, UPDATE ON items TO "cred_{db}"')
    url = psycopg.conninfo.make_conninfo(ctx.app, user=f"cred_{db}", password="cred-pw")
    conn = psycopg.connect(url)
    conn.execute("UPDATE items SET note = 'other credential, open across the fence' WHERE id = 1")
    ctx.keep.append(conn)


def drop_other_credential(ctx: Ctx) -> None:
    close_kept(ctx)
    with psycopg.connect(ctx.superuser, autocommit=True) as conn:
        db = conn.info.dbname
        with contextlib.suppress(psycopg.Error):
            conn.execute(f'DROP OWNED BY "cred_{db}"')
            conn.execute(f'DROP ROLE "cred_{db}"')


def sequence_under_fence(ctx: Ctx) -> None:
    ctx.run(ctx.app, "SELECT nextval('counter_seq')")
    ctx.attempt(ctx.app, "INSERT INTO items (id) VALUES (7000)")


def two_followers(ctx: Ctx) -> None:
    """A second ``ferry pg follow`` started while the first still runs (a restart that forgot the old
    one), then a burst of updates to the same few keys from two sessions."""
    assert ctx.ferry is not None
    log = ctx.work / "second-follower.log"
    second = ctx.ferry.spawn(["pg", "follow", "--source", ctx.app, "--target", ctx.target, "--batch", "7"], log)
    stop = threading.Event()

    def burst(seed: int) -> None:
        rng = random.Random(seed)
        with psycopg.connect(ctx.app, autocommit=True) as conn:
            while not stop.is_set():
                with contextlib.suppress(psycopg.errors.DeadlockDetected):
                    conn.execute("UPDATE items SET note = %s WHERE id = %s", (f"v{rng.random()}", rng.randint(1, 5)))

    threads = [threading.Thread(target=burst, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    time.sleep(5)
    stop.set()
    for t in threads:
        t.join()
    time.sleep(1)
    second.terminate()
    try:
        second.wait(60)
    except subprocess.TimeoutExpired:
        second.kill()
    text = log.read_text(errors="replace").strip().splitlines()
    ctx.said.append(f"second follower exited {second.returncode}: {text[-1] if text else ''}")


def close_kept(ctx: Ctx) -> None:
    for conn in ctx.keep:
        with contextlib.suppress(Exception):
            conn.close()


def every_write_under_the_fence(ctx: Ctx) -> None:
    for statement in (
        "UPDATE items SET note = 'fenced' WHERE id = 2",
        "INSERT INTO items (id) VALUES (5000)",
        "DELETE FROM items2 WHERE id = 3",
        "INSERT INTO nokey VALUES ('fenced')",
        "TRUNCATE nokey",
        "TRUNCATE twin",
        "INSERT INTO events VALUES (9999, '2025-05-05')",
        "UPDATE events SET day = '2025-06-06' WHERE id = 1",
        "INSERT INTO items (id) SELECT 6000 + g FROM generate_series(1, 3) g ON CONFLICT DO NOTHING",
        "MERGE INTO items2 t USING (VALUES (1)) v(id) ON t.id = v.id WHEN MATCHED THEN UPDATE SET n = 0",
    ):
        ctx.attempt(ctx.app, statement)
    with psycopg.connect(ctx.app, autocommit=True) as conn:
        try:
            with conn.cursor().copy("COPY nokey FROM STDIN") as copy:
                copy.write_row(("copied under the fence",))
            ctx.said.append("went through: COPY nokey FROM STDIN")
        except psycopg.Error as exc:
            ctx.said.append(f"refused ({type(exc).__name__}): COPY")
