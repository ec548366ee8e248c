"""``ferry record`` changes nothing, at any moment of a run; cleaning up is a step of its own, at the end."""

from __future__ import annotations

from tests.helpers import assert_one_line_error, ferry
from tests.support.world import World, stack_file


def test_record_in_the_middle_of_a_capture_run_takes_nothing_away(world: World) -> None:
    stack_file(world.root, "http://127.0.0.1:9", capture=True, smokeUrls=[])
    assert world.ferry("run", "--yes", "--until", "catch-up").code == 0
    recorded = world.ferry("record")
    assert recorded.code == 0, recorded.output
    assert (world.root / ".ferry" / "test" / "record.json").exists()
    # Capture and the follow's record are what the rest of the run stands on: both are still there.
    assert world.source_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_capture'") == 1
    assert world.target_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = '_ferry_follow'") == 1
    refused = world.ferry("run", "--yes", "--from", "cleanup")
    assert_one_line_error(refused, "phase cleanup failed", "cleanup comes after switch and unfreeze")
    assert world.source_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_capture'") == 1
    world.source_db.execute(
        "INSERT INTO orders SELECT g, 'written after the record' FROM generate_series(6000, 6999) g"
    )
    finished = world.ferry("run", "--yes", "--json")
    assert finished.code == 0, finished.output
    assert world.target_db.scalar("SELECT count(*) FROM orders WHERE note = 'written after the record'") == 1000
    phases = {p["name"]: p for p in finished.json["phases"]}
    assert "change capture stays on both sides for the follow back" in phases["cleanup"]["detail"]
    assert world.ferry("finish").code == 0
    for db in (world.source_db, world.target_db):
        assert db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_capture'") == 0


def test_record_on_a_stack_that_never_ran_leaves_any_capture_alone(world: World) -> None:
    """Someone else's capture (another migration, another schema) is not ferry record's to take off."""
    assert ferry("pg", "capture", "install", "--source", world.source_db.url).code == 0
    assert ferry("pg", "capture", "install", "--source", world.source_db.url, "--capture-schema", "theirs").code == 0
    try:
        recorded = world.ferry("record")
        assert recorded.code == 0, recorded.output
        for schema in ("ferry_capture", "theirs"):
            assert world.source_db.scalar("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)) == 1
        assert world.source_db.scalar("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal") == 4
    finally:
        for schema in ("ferry_capture", "theirs"):
            ferry("pg", "capture", "remove", "--source", world.source_db.url, "--capture-schema", schema)
