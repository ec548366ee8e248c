"""Materialized views: a view stale on the source, views left WITH NO DATA, and their sync in the freeze."""

from __future__ import annotations

import psycopg

from migration.postgres import verify_databases
from migration.postgres.matviews import matview_identities, sync_matviews
from tests.conftest import Database
from tests.helpers import ferry

VIEWS = """
CREATE TABLE base (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO base SELECT g, g FROM generate_series(1, 1000) g;
CREATE TABLE other (id int PRIMARY KEY);
INSERT INTO other SELECT generate_series(1, 10);
CREATE MATERIALIZED VIEW totals AS SELECT id % 10 AS k, sum(v) AS total, count(*) AS n FROM base GROUP BY 1;
-- Over another view, and over it through a plain view.
CREATE MATERIALIZED VIEW top AS SELECT k, total FROM totals WHERE total > 50000;
CREATE VIEW totals_plain AS SELECT k, n FROM totals;
CREATE MATERIALIZED VIEW top_plain AS SELECT k FROM totals_plain WHERE n > 100;
CREATE MATERIALIZED VIEW fresh AS SELECT count(*) AS n FROM other;
CREATE MATERIALIZED VIEW never_filled AS SELECT id FROM base WITH NO DATA;
"""
# Base rows change after the views were refreshed: totals, top and top_plain are stale.
STALE = "UPDATE base SET v = v + 7 WHERE id % 3 = 0; INSERT INTO base SELECT g, 1 FROM generate_series(1001, 1040) g"


def _populated(db: Database) -> dict[str, bool]:
    rows = db.execute("SELECT relname, relispopulated FROM pg_class WHERE relkind = 'm' ORDER BY 1")
    return {str(name): bool(populated) for name, populated in rows}


def _verify(source: Database, target: Database) -> tuple[int, dict[str, object]]:
    run = ferry("pg", "verify", "--source", source.url, "--target", target.url, "--json")
    assert run.code in (0, 1), run.output
    return run.code, dict(run.json)


def test_a_view_stale_on_the_source_is_refreshed_by_the_copy_and_verify_says_so(
    source_db: Database, target_db: Database
) -> None:
    source_db.execute(VIEWS)
    source_db.execute(STALE)
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--json")
    assert run.code == 0, run.output
    assert run.json["materialized_views"] == 4  # the populated ones
    # The target holds what the queries give on its tables; the view the source never filled stays empty.
    assert _populated(target_db) == _populated(source_db) == {
        "fresh": True, "never_filled": False, "top": True, "top_plain": True, "totals": True,
    }  # fmt: skip
    assert target_db.execute("TABLE totals ORDER BY k") == source_db.execute(
        "SELECT id % 10, sum(v), count(*) FROM base GROUP BY 1 ORDER BY 1"
    )
    assert target_db.execute("TABLE totals ORDER BY k") != source_db.execute("TABLE totals ORDER BY k")
    code, report = _verify(source_db, target_db)
    assert code == 0, report["differences"]
    stale = sorted(n for n in report["notes"] if "stale on the source" in n)  # type: ignore[attr-defined]
    assert [n.split(":")[0] for n in stale] == [
        "materialized view public.top", "materialized view public.top_plain", "materialized view public.totals",
    ], stale  # fmt: skip
    assert "the target holds it refreshed" in stale[-1]
    assert verify_databases(source_db.url, target_db.url, mode="quick").identical

    # Filled on one side only: a difference, either way round.
    target_db.execute("REFRESH MATERIALIZED VIEW never_filled")
    code, report = _verify(source_db, target_db)
    assert code == 1
    assert [(d["kind"], d["name"], d["source"]) for d in report["differences"]] == [  # type: ignore[attr-defined]
        ("materialized view", "public.never_filled", "not populated (WITH NO DATA)")
    ]


def test_a_refresh_on_the_source_after_the_copy_is_synced_and_a_real_difference_is_one(
    source_db: Database, target_db: Database
) -> None:
    source_db.execute(VIEWS)
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url)
    assert run.code == 0, run.output
    assert verify_databases(source_db.url, target_db.url, mode="full").identical
    with psycopg.connect(source_db.url, autocommit=True) as src:
        before = matview_identities(src)
    # While live the follow brought the rows (here: the same statement on both sides); the views it cannot.
    for db in (source_db, target_db):
        db.execute(STALE)
    source_db.execute(
        "REFRESH MATERIALIZED VIEW totals; REFRESH MATERIALIZED VIEW never_filled; "
        "REFRESH MATERIALIZED VIEW fresh WITH NO DATA"
    )
    with psycopg.connect(source_db.url, autocommit=True) as src:
        after = matview_identities(src)
    assert {name for name in after if after[name] != before[name]} == {
        "public.totals", "public.never_filled", "public.fresh",
    }  # fmt: skip
    assert after["public.never_filled"][1] and not after["public.fresh"][1]

    # The target's totals is neither the source's contents nor its query's result there: a difference.
    report = verify_databases(source_db.url, target_db.url, mode="full")
    assert sorted((d.kind, d.name) for d in report.differences) == [
        ("checksum", "public.totals all rows"),
        ("materialized view", "public.fresh"),
        ("materialized view", "public.never_filled"),
    ], report.differences

    with psycopg.connect(source_db.url, autocommit=True) as src, psycopg.connect(target_db.url) as dst:
        refreshed = sync_matviews(src, dst)
        dst.commit()
        # top (over totals) was not refreshed on the source: both still hold the same rows, left alone.
        assert sorted(refreshed[:2]) == ["public.never_filled", "public.totals"] and refreshed[2:] == ["public.fresh"]
        assert sync_matviews(src, dst) == []  # nothing left to do
    assert _populated(target_db) == _populated(source_db)
    report = verify_databases(source_db.url, target_db.url, mode="full")
    assert report.identical, report.differences
    assert not [n for n in report.notes if "stale" in n]
