"""``ferry run`` with the fence: every write that gets past it stops the run before the switch, app unfrozen.

The bypasses of ``tests/postgres/capture/test_witness.py``, made while a real run is frozen (after its final
sync, or after its verify, right before the switch): the run must end with exit code 1, nothing
switched, the old add-on attached as ``DATABASE`` again, and the old database writable.
"""

from __future__ import annotations

import psycopg
import pytest

from tests.helpers import assert_one_line_error
from tests.support.world import CUTOVER, World, stack_file

FENCE_CUTOVER = [w for w in CUTOVER if not w.startswith(("maintenance", "scale"))]


def _fenced_run(world: World, until: str) -> None:
    stack_file(world.root, "http://127.0.0.1:9", capture=True, freeze="fence", smokeUrls=[])
    stopped = world.ferry("run", "--yes", "--until", until)
    assert stopped.code == 0, stopped.output
    assert world.state()["frozen"] is True


def _back_on_the_old_database(world: World) -> None:
    config = world.fake.apps["shop"].config
    assert config["DATABASE_URL"] == world.source_db.url
    assert not any(w.startswith("config") for w in world.writes())
    assert world.state()["frozen"] is False
    world.source_db.execute("INSERT INTO orders VALUES (9001, 'the app writes again')")  # the fence is down


@pytest.mark.parametrize(
    "bypass",
    [
        # The table owner (on Heroku, the app's own credential) takes capture off for one write.
        "ALTER TABLE orders DISABLE TRIGGER USER; UPDATE orders SET note = 'past the fence' WHERE id = 1;"
        "ALTER TABLE orders ENABLE ALWAYS TRIGGER ferry_capture_row;"
        "ALTER TABLE orders ENABLE ALWAYS TRIGGER ferry_capture_statement",
        # DDL, which no trigger sees.
        "CREATE TABLE extra (id int PRIMARY KEY); INSERT INTO extra VALUES (1)",
        "ALTER TABLE orders ADD COLUMN flag int DEFAULT 7",
        # A large object, which no trigger sees either.
        "SELECT lo_from_bytea(0, 'an upload')",
    ],
    ids=["owner disables capture", "create table", "add column", "large object"],
)
@pytest.mark.parametrize("after", ["final-sync", "verify"])
def test_a_write_past_the_fence_stops_the_run_before_the_switch(world: World, bypass: str, after: str) -> None:
    _fenced_run(world, after)
    world.source_db.execute(bypass)
    stopped = world.ferry("run", "--yes")
    failed = "verify" if after == "final-sync" else "switch"
    assert_one_line_error(stopped, f"phase {failed} failed", "nothing was switched", "the app was unfrozen", code=1)
    _back_on_the_old_database(world)
    # The aliases were attached while live; the proof fails before anything is detached: nothing to undo.
    assert "detach" not in world.writes() and world.writes()[:2] == [
        "attach HEROKU_POSTGRES_DB",
        "attach HEROKU_REDIS_OLD",
    ]
    # The next run freezes and copies again inside the freeze (capture put on anew where it was broken):
    # what got past the fence, and what the app wrote since, arrive.
    again = world.ferry("run", "--yes")
    assert again.code == 0, again.output
    assert world.target_db.scalar("SELECT note FROM orders WHERE id = 9001") == "the app writes again"
    assert world.state()["verify"]["postgres"]["identical"] is True
    if "past the fence" in bypass:
        assert world.target_db.scalar("SELECT note FROM orders WHERE id = 1") == "past the fence"


def test_replica_mode_is_refused_by_the_fence_and_the_run_switches(world: World) -> None:
    """A superuser in replica mode: capture's triggers fire ALWAYS, so the write is refused, not lost."""
    _fenced_run(world, "final-sync")
    with psycopg.connect(world.source_db.url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("UPDATE orders SET note = 'replica' WHERE id = 2")
    finished = world.ferry("run", "--yes")
    assert finished.code == 0, finished.output
    assert world.writes() == FENCE_CUTOVER
    assert world.state()["verify"]["postgres:witness"]["identical"] is True


def test_a_transaction_prepared_before_the_freeze_keeps_the_app_writable(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", capture=True, freeze="fence", smokeUrls=[])
    assert world.ferry("run", "--yes", "--until", "catch-up").code == 0
    with psycopg.connect(world.source_db.url, autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("UPDATE orders SET note = 'prepared' WHERE id = 3")
        conn.execute("PREPARE TRANSACTION 'ferry-run-test'")
    try:
        refused = world.ferry("run", "--yes")
        assert_one_line_error(refused, "phase freeze failed", "prepared transaction", "ferry-run-test")
        assert world.state()["frozen"] is False and world.writes() == FENCE_CUTOVER[:2]  # the aliases, while live
        world.source_db.execute("INSERT INTO orders VALUES (9002, 'still writable')")
        world.source_db.execute("COMMIT PREPARED 'ferry-run-test'")
        finished = world.ferry("run", "--yes")
        assert finished.code == 0, finished.output
        assert world.target_db.scalar("SELECT note FROM orders WHERE id = 3") == "prepared"
        assert world.target_db.scalar("SELECT note FROM orders WHERE id = 9002") == "still writable"
    finally:
        if world.source_db.execute("SELECT 1 FROM pg_prepared_xacts WHERE gid = 'ferry-run-test'"):
            world.source_db.execute("ROLLBACK PREPARED 'ferry-run-test'")


def test_numbers_handed_out_during_the_freeze_are_not_handed_out_again(world: World) -> None:
    """nextval() takes no write the fence could refuse: the sequence is copied again right before the switch."""
    world.source_db.execute("CREATE SEQUENCE invoice_no")
    _fenced_run(world, "final-sync")
    handed = [world.source_db.scalar("SELECT nextval('invoice_no')") for _ in range(5)]
    finished = world.ferry("run", "--yes")
    assert finished.code == 0, finished.output
    assert world.target_db.scalar("SELECT nextval('invoice_no')") == max(handed) + 1  # type: ignore[operator]
