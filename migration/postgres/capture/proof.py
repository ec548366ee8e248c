"""The freeze's proof that no write escaped it, as a verify report: the witness checked, and compared where it must.

:func:`verify_frozen` runs after the verify of what changed (and again right before the switch):
it checks the :class:`~.witness.Witness` taken as writes stopped against the source now. A change
no comparison can clear (DDL, a capture trigger disabled or touched, a prepared transaction) is a
difference: the run stops before the switch and the app goes back to its old database. Tables
whose storage was rewritten, and — when a transaction that is not ferry's committed on the
server since the freeze — tables whose write counters moved, are compared in full, as
``ferry pg verify --mode full`` would. Large objects, which no trigger sees, are compared by content.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from psycopg import sql

from migration.postgres.capture.install import CaptureSettings
from migration.postgres.capture.large_object_sync import large_object_digests
from migration.postgres.capture.witness import Witness, check_witness
from migration.postgres.catalog import Conn
from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import parse_url
from migration.postgres.footprint import CAPTURE_LOG, FOLLOW_BATCHES, in_capture
from migration.postgres.verify import (
    DatabaseVerifyReport,
    Difference,
    SnapshotPair,
    check_table,
    present_data_tables,
)

__all__ = ["verify_frozen"]


def _our_transactions(dst: Conn) -> set[int]:
    """The source transactions that cleared the follow's batches (recorded on the target with each batch)."""
    row = dst.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (FOLLOW_BATCHES,)).fetchone()
    if not (row and row[0]):
        return set()
    rows = dst.execute(f"SELECT source_xid FROM {FOLLOW_BATCHES} WHERE source_xid IS NOT NULL")
    return {int(r[0]) for r in rows}


def _logged(src: Conn, schema: str) -> int:
    row = src.execute(
        "SELECT pg_catalog.to_regclass(pg_catalog.format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
        (schema, CAPTURE_LOG),
    ).fetchone()
    if not (row and row[0]):
        return 0
    found = src.execute(sql.SQL("SELECT count(*) FROM {}").format(in_capture(schema, CAPTURE_LOG))).fetchone()
    return int(found[0]) if found else 0


def verify_frozen(
    source_url: str, target_url: str, witness: Witness, *, capture: CaptureSettings | None = None
) -> DatabaseVerifyReport:
    """Whether the source changed since *witness* other than through the change log the target has applied."""
    started = time.monotonic()
    schema = (capture or CaptureSettings()).schema
    source, target = parse_url(source_url, "source"), parse_url(target_url, "target")
    report = DatabaseVerifyReport(mode="witness")

    def read_target() -> tuple[set[int], dict[int, str]]:
        with connect(target, autocommit=True) as dst, pg_errors("target", target):
            return _our_transactions(dst), large_object_digests(dst)

    # Inside the freeze: the target is read while the source's connection opens.
    with ThreadPoolExecutor(1) as pool:
        target_read = pool.submit(read_target)
        with connect(source, autocommit=True) as src, pg_errors("source", source):
            ours, target_objects = target_read.result()
            findings = check_witness(src, witness, ours, schema)
            source_objects = large_object_digests(src)
            late = _logged(src, schema)
    if late:
        # The drain emptied the log; only a transaction open across the freeze, committed since, logs more.
        report.add(Difference("freeze", f"{late} changes logged after the final sync", "on the source", "(missing)"))
    for change in findings.changed:
        report.add(Difference("freeze", change, "changed while writes were stopped", "not on the target"))
    for oid in sorted(source_objects.keys() | target_objects.keys()):
        if source_objects.get(oid) != target_objects.get(oid):
            report.add(
                Difference(
                    "large object",
                    f"{oid} (written during the freeze: no trigger sees large objects)",
                    source_objects.get(oid, "(missing)"),
                    target_objects.get(oid, "(missing)"),
                )
            )
    suspects = set(findings.rewritten) | (set(findings.moved) if findings.foreign_commits else set())
    if suspects:
        for table in [t for t in present_data_tables(source, target) if t.name in suspects]:
            with SnapshotPair(source, target) as (s, d):
                diffs, rows, ranges = check_table(s, d, source, target, table, "full")
            report.add_all(diffs)
            report.rows_checked += rows
            report.ranges_checked += ranges
            report.tables_checked += 1
    report.notes.append(_summary(findings.foreign_commits, sorted(suspects), findings.ended))
    report.seconds = time.monotonic() - started
    return report


def _summary(foreign: int, compared: list[str], ended: int) -> str:
    if foreign:
        said = (
            f"{foreign} transactions that were not ferry's committed on the source's server since writes stopped "
            "(another database, autovacuum, or a write past the fence)"
        )
    else:
        said = "no transaction but ferry's committed on the source's server since writes stopped"
    if compared:
        said += f"; compared in full: {', '.join(compared)}"
    if ended:
        said += f"; {ended} sessions holding unacknowledged writes were ended"
    return said
