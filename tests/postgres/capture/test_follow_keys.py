"""Keys whose text depends on the writing session's settings arrive whoever writes them, however set."""

from __future__ import annotations

import psycopg
import pytest

from migration.postgres import verify_databases
from tests.conftest import Database
from tests.helpers import ferry

SCHEMA = """
CREATE TABLE k_daterange (k daterange PRIMARY KEY, v int);
CREATE TABLE k_tstzrange (k tstzrange PRIMARY KEY, v int);
CREATE TABLE k_interval (k interval PRIMARY KEY, v int);
CREATE TABLE k_float (k float8 PRIMARY KEY, v int);
CREATE TABLE k_money (k money PRIMARY KEY, v int);
CREATE TABLE k_plan (plan text, period tsrange, v int, PRIMARY KEY (plan, period));
CREATE TABLE k_plain (id int PRIMARY KEY, v int);
"""
WRITES = """
INSERT INTO k_daterange VALUES ('[2024-02-01, 2024-02-03)', 1), ('[2024-01-31, 2024-02-01)', 2);
INSERT INTO k_tstzrange VALUES ('[2024-01-01 00:00+00, 2024-01-02 00:00+00)', 1);
INSERT INTO k_interval VALUES ('1 year 2 months 3 days 04:05:06.789', 1), ('-3 days 01:00', 2);
INSERT INTO k_float VALUES (0.1 + 0.2, 1), (1e-310, 2);
INSERT INTO k_money VALUES (1234.5, 1);
INSERT INTO k_plan VALUES ('gold', '[2024-03-04 10:00, 2024-03-05 10:00)', 1);
INSERT INTO k_plain VALUES (1, 1);
UPDATE k_daterange SET v = v + 10;
"""


@pytest.mark.parametrize(
    "settings",
    [
        "SET DateStyle = 'SQL, DMY'; SET TimeZone = 'America/St_Johns'",
        "SET DateStyle = 'German'; SET IntervalStyle = 'sql_standard'; SET extra_float_digits = -15",
        "SET DateStyle = 'Postgres, MDY'; SET IntervalStyle = 'iso_8601'; SET lc_monetary = 'C'",
    ],
)
def test_keys_written_under_any_session_settings_arrive(
    settings: str, source_db: Database, target_db: Database
) -> None:
    source_db.execute(SCHEMA)
    copied = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url, "--follow-seconds", "0")
    assert copied.code == 0, copied.output
    try:
        with psycopg.connect(source_db.url, autocommit=True) as conn:
            conn.execute(settings)
            conn.execute(WRITES)
        followed = ferry("pg", "follow", "--source", source_db.url, "--target", target_db.url, "--seconds", "0")
        assert followed.code == 0, followed.output
        assert source_db.scalar("SELECT count(*) FROM ferry_capture.log") == 0
        report = verify_databases(source_db.url, target_db.url, mode="full")
        assert report.identical, [str(d) for d in report.differences]
        # Only the tables whose key's text depends on settings pay for pinning them.
        pinned = source_db.execute("SELECT name FROM ferry_capture.captured WHERE pinned ORDER BY name")
        assert [r[0] for r in pinned] == [
            "public.k_daterange", "public.k_float", "public.k_interval", "public.k_money", "public.k_plan",
            "public.k_tstzrange",
        ]  # fmt: skip
    finally:
        ferry("pg", "capture", "remove", "--source", source_db.url)
