"""Progress: bars on a terminal, plain lines otherwise, secrets never shown."""

from __future__ import annotations

import io
import re

from rich.console import Console

from migration.progress import PlainProgress, RichProgress, make_progress
from migration.redact import register_secret
from tests.conftest import Database
from tests.helpers import ferry


def test_plain_lines_report_phases_tables_and_overall_progress() -> None:
    out = io.StringIO()
    progress = PlainProgress(out, interval=0.0)
    progress.set_total(1000)
    progress.phase("data")
    progress.advance("public.t", 10, 500)
    progress.finish_item("public.t", "copied public.t: 10 rows")
    lines = out.getvalue().splitlines()
    assert re.match(r"\d\d:\d\d:\d\d == data$", lines[0])
    assert "progress: 10 rows, 500 B of ~1.0 kB (50%), ETA" in lines[1]
    assert lines[2].endswith("copied public.t: 10 rows")


def test_rich_bars_show_rows_bytes_and_hide_secrets() -> None:
    register_secret("bar-secret-77")
    buffer = io.StringIO()
    progress = RichProgress(Console(file=buffer, force_terminal=True, width=150))
    progress.set_total(2_000_000)
    progress.start_item("public.accounts", "public.accounts", 1_000_000, 5000)
    progress.advance("public.accounts", 1234, 500_000)
    progress.message("connected with bar-secret-77")
    progress.close()
    text = buffer.getvalue()
    assert "public.accounts" in text and "1,234 rows" in text and "overall" in text
    assert "bar-secret-77" not in text


def test_not_a_terminal_means_plain_lines() -> None:
    assert isinstance(make_progress(stream=io.StringIO()), PlainProgress)


def test_copy_progress_in_ci_is_plain_and_has_no_password(source_db: Database, target_db: Database) -> None:
    source_db.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000)")
    run = ferry("pg", "copy", "--source", source_db.url, "--target", target_db.url)
    assert run.code == 0, run.stderr
    assert re.search(r"^\d\d:\d\d:\d\d == data$", run.stderr, re.M)
    assert re.search(r"copied public\.t: 1000 rows, \d+ bytes in [\d.]+ s", run.stderr)
    assert "copied 1 tables, 1000 rows" in run.stdout
    assert source_db.cluster.password not in run.output


def test_counted_units_show_counts_rates_and_eta() -> None:
    out = io.StringIO()
    progress = PlainProgress(out, interval=0.0, unit="keys")
    progress.set_total(1000)
    progress.advance("keys", 250, 3_000_000)
    assert re.search(r"progress: 250 keys, [\d,]+/s, 3\.0 MB, 25% of ~1000, ETA \d+ s", out.getvalue())
    buffer = io.StringIO()
    bars = RichProgress(Console(file=buffer, force_terminal=True, width=150), unit="keys")
    bars.set_total(1000)
    bars.start_item("keys", "keys", 1000, 1000)
    bars.advance("keys", 400, 400)
    bars.close()
    assert "400/1000" in buffer.getvalue() and "kB" not in buffer.getvalue()
