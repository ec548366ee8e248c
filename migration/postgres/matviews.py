"""Materialized views: refreshed by the copy, compared by verify, brought in line inside the freeze.

No SQL writes rows into a materialized view: ``REFRESH`` runs its query again, on the tables of
the server it runs on. So the target's view holds what its query gives on the target's tables,
which after a copy is what it gives on the source's. That is not always what the source's view
holds: a view not refreshed since its base tables changed is *stale*, and its old contents cannot
be reproduced on the target. Verify therefore calls a view identical when the contents match,
and also when the target's contents equal its query run on the source (in the source's
snapshot, read-only), the source's own being stale: a note naming the view, not a difference.
A view over such a stale view reads stale rows on the source too, where the copy's refresh
read refreshed ones: it is identical when its target contents are its query on the target's
relations, each of which verify compares on its own. Whether a view holds data at all
(``relispopulated``; ``WITH NO DATA``) is compared as such, and the copy leaves a view the
source never filled unfilled.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from migration.postgres.catalog import Conn
from migration.postgres.connection import pg_errors
from migration.postgres.conninfo import PgEndpoint
from migration.verify import Difference

__all__ = ["compare_matview", "matview_identities", "refresh_matviews", "sync_matviews"]

_MATVIEWS = r"""
SELECT format('%I.%I', n.nspname, c.relname), c.relfilenode, c.relispopulated
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'm' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
 ORDER BY c.oid
"""
# Row text depends on these: both sides of a checksum must print values alike (as verify's sessions do).
_COMPARABLE = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "1"),
    ("bytea_output", "hex"),
)
_CHECKSUM = "SELECT count(*), coalesce(sum(pg_catalog.hashtextextended(__ferry_r::text, 0)), 0)::text FROM {} __ferry_r"
STALE_NOTE = "materialized view {}: stale on the source; the target holds it refreshed"


def refresh_matviews(control: Conn, names: list[str], target: PgEndpoint) -> None:
    """Refresh in rounds: a view over another view waits for the round after it."""
    left = list(names)
    with pg_errors("target", target):
        _refresh_rounds(control, left)


def _refresh_rounds(control: Conn, left: list[str]) -> None:
    while left:
        failed: list[str] = []
        error: psycopg.Error | None = None
        for name in left:
            try:
                # Its own transaction (or savepoint): a view refused this round leaves the session usable.
                with control.transaction():
                    control.execute(f"REFRESH MATERIALIZED VIEW {name}")
            except psycopg.errors.ObjectNotInPrerequisiteState as exc:
                failed.append(name)
                error = exc
        if error is not None and len(failed) == len(left):
            raise error
        left = failed


def matview_identities(conn: Conn) -> dict[str, tuple[int, bool]]:
    """Every materialized view: qualified name → ``(relfilenode, populated)``.

    A ``REFRESH`` that is not ``CONCURRENTLY`` (``WITH NO DATA`` too) writes a new relfilenode, so
    two readings that differ say the view was refreshed in between; ``REFRESH … CONCURRENTLY`` keeps
    the relfilenode and writes rows instead, which the table write counters see.

    :param conn: any session on the server (read only).
    """
    return {str(r[0]): (int(r[1]), bool(r[2])) for r in conn.execute(_MATVIEWS).fetchall()}


def _populated(conn: Conn, name: str) -> bool:
    row = conn.execute("SELECT relispopulated FROM pg_catalog.pg_class WHERE oid = %s::regclass", (name,)).fetchone()
    return bool(row and row[0])


def _measure(conn: Conn, relation: str, full: bool) -> tuple[int, str]:
    """Row count and, when *full*, order-independent checksum of *relation*'s rows."""
    if not full:
        row = conn.execute(f"SELECT count(*) FROM {relation} __ferry_r").fetchone()
        return (int(row[0]) if row else 0), ""
    row = conn.execute(_CHECKSUM.format(relation)).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def _contents(conn: Conn, name: str, full: bool = True) -> tuple[int, str]:
    """What the view holds."""
    return _measure(conn, f"ONLY {name}", full)


def _query_result(conn: Conn, name: str, full: bool = True) -> tuple[int, str]:
    """What the view's query gives now on this server's tables (it only reads)."""
    row = conn.execute("SELECT pg_catalog.pg_get_viewdef(%s::regclass)", (name,)).fetchone()
    assert row is not None
    return _measure(conn, f"({str(row[0]).strip().rstrip(';')})", full)


def _comparably(conn: Conn, read: Callable[[Conn, str], tuple[int, str]], name: str) -> tuple[int, str]:
    """*read* under settings that print values alike on both sides, undone after (the caller's session)."""
    with conn.transaction():
        for setting, value in _COMPARABLE:
            conn.execute("SELECT pg_catalog.set_config(%s, %s, true)", (setting, value))
        return read(conn, name)


_READS_MATVIEWS = """
WITH RECURSIVE reads(oid) AS (
    SELECT d.refobjid FROM pg_catalog.pg_rewrite r
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
     WHERE r.ev_class = %s::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> r.ev_class
    UNION
    SELECT d.refobjid FROM reads
      JOIN pg_catalog.pg_class c ON c.oid = reads.oid AND c.relkind = 'v'
      JOIN pg_catalog.pg_rewrite r ON r.ev_class = c.oid
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
     WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> r.ev_class
)
SELECT EXISTS (SELECT FROM reads JOIN pg_catalog.pg_class c ON c.oid = reads.oid WHERE c.relkind = 'm')
"""


def _reads_matviews(conn: Conn, name: str) -> bool:
    """The view's query reads another materialized view, directly or through plain views."""
    row = conn.execute(_READS_MATVIEWS, (name,)).fetchone()
    return bool(row and row[0])


def _state(populated: bool) -> str:
    return "populated" if populated else "not populated (WITH NO DATA)"


def compare_matview(
    src: Conn, dst: Conn, source: PgEndpoint, target: PgEndpoint, name: str, *, full: bool
) -> tuple[list[Difference], int, str | None]:
    """Compare one materialized view, the connections being verify's read-only snapshots.

    :param full: compare checksums; otherwise row counts only.
    :returns: the differences, the source's row count, and a note when the source's view is stale
        and the target's holds its query's result on the source.
    """
    with pg_errors("source", source):
        in_source = _populated(src, name)
    with pg_errors("target", target):
        in_target = _populated(dst, name)
    if in_source != in_target:
        return [Difference("materialized view", name, _state(in_source), _state(in_target))], 0, None
    if not in_source:
        return [], 0, None
    with pg_errors("source", source):
        held = _contents(src, name, full)
    with pg_errors("target", target):
        theirs = _contents(dst, name, full)
    if held == theirs:
        return [], held[0], None
    with pg_errors("source", source):
        computed = _query_result(src, name, full)
    if computed == theirs:
        return [], held[0], STALE_NOTE.format(name)
    with pg_errors("target", target):
        # Over a view stale on the source, the query there reads stale rows too, where the copy's
        # refresh read refreshed ones: the target's must then be its query on the target's own
        # relations, each of which verify compares on its own (tables equal, views by this rule).
        if _reads_matviews(dst, name) and _query_result(dst, name, full) == theirs:
            return [], held[0], STALE_NOTE.format(name) + " (over materialized views)"
    if held[0] != theirs[0] or not full:
        return [Difference("row count", name, str(held[0]), str(theirs[0]))], held[0], None
    return (
        [Difference("checksum", f"{name} all rows", f"{held[0]} rows, {held[1]}", f"{theirs[0]} rows, {theirs[1]}")],
        held[0],
        None,
    )


def sync_matviews(source: Conn, target: Conn) -> list[str]:
    """Bring the target's materialized views in line with the source's, inside the write freeze.

    The tables must already hold the same rows on both sides. For each view of the source the
    target has: one the source holds unpopulated is emptied (``REFRESH … WITH NO DATA``); one
    populated on the source is refreshed on the target where the target's is unpopulated or its
    contents' checksum differs from the source's (refreshed, the target's then holds the query's
    result on the same rows: see the module's text for a source view that is stale). Refreshes run
    in rounds, as the copy's do (a view over an unpopulated view waits for the next round), and
    before the emptying, so that a view over one the source emptied can still be computed.

    :param source: a session on the source (read only: its views' states and checksums).
    :param target: a session on the target; each statement runs in its own transaction, or in a
        savepoint when the session is inside one.
    :returns: the qualified names of the target's views refreshed, then those emptied.
    """
    in_source = {name: populated for name, (_node, populated) in matview_identities(source).items()}
    refresh: list[str] = []
    empty: list[str] = []
    for name, (_node, populated) in matview_identities(target).items():
        if name not in in_source:
            continue
        if not in_source[name]:
            if populated:
                empty.append(name)
        elif not populated or _comparably(source, _contents, name) != _comparably(target, _contents, name):
            refresh.append(name)
    _refresh_rounds(target, list(refresh))
    for name in empty:
        with target.transaction():
            target.execute(f"REFRESH MATERIALIZED VIEW {name} WITH NO DATA")
    return refresh + empty
