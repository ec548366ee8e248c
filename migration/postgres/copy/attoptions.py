"""Column options (``ALTER TABLE … ALTER COLUMN … SET (…)``) the target's server does not know.

pg_dump writes each column's attribute options as the source's catalog holds them. A patched
server may keep options of its own there (Debian's PostgreSQL 15.20 stamps every column with
``pg_attver=…``), which a stock target refuses with ``unrecognized parameter``, and one refused
statement fails the whole pre-data transaction. So every option name the schema uses is tried
once on the target, on a temporary table in a transaction that is rolled back; the names it does
not recognize are left out of the statements (a statement left with none is dropped), and every
other option stays (stock PostgreSQL knows ``n_distinct`` and ``n_distinct_inherited``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg

from migration.postgres.catalog import Conn
from migration.postgres.copy.restore import EntrySQL, RestoreScript

__all__ = ["LeftOut", "leave_out_unknown_attribute_options"]

_SET_OPTIONS = re.compile(
    r"^(?P<head>ALTER (?:FOREIGN TABLE|TABLE|MATERIALIZED VIEW) (?:ONLY )?(?P<table>.+?) ALTER COLUMN "
    r"(?P<column>.+) SET \()(?P<options>[^()]*)\);$",
    re.M,
)
_PROBE = "pg_temp.ferry_attoption_probe"
# Columns named in the note, per option; the rest are counted.
_NAMED = 3


@dataclass
class LeftOut:
    """What was left out: each refused option name and the columns that carried it."""

    columns: dict[str, list[str]] = field(default_factory=dict)

    def note(self) -> str | None:
        """One line naming what was left out, or ``None`` when nothing was."""
        if not self.columns:
            return None
        parts = []
        for name, columns in sorted(self.columns.items()):
            shown = ", ".join(columns[:_NAMED]) + (", …" if len(columns) > _NAMED else "")
            parts.append(f"{name} on {len(columns)} column{'s' if len(columns) != 1 else ''} ({shown})")
        return "note: attribute options the target's server does not know, left out: " + "; ".join(parts)


def _items(options: str) -> list[str]:
    """``a=1, b=2`` → ``["a=1", "b=2"]`` (pg_dump joins the catalog's array with ``", "``)."""
    return [item.strip() for item in options.split(",") if item.strip()]


def _name(item: str) -> str:
    return item.split("=", 1)[0].strip().lower()


def _used_options(scripts: list[RestoreScript]) -> dict[str, str]:
    """Each option name the scripts set on a column, with one of its ``name=value`` items."""
    found: dict[str, str] = {}
    for script in scripts:
        for entry in script.entries:
            for match in _SET_OPTIONS.finditer(entry.sql):
                for item in _items(match["options"]):
                    found.setdefault(_name(item), item)
    return found


def _refused(conn: Conn, options: dict[str, str]) -> set[str]:
    """The option names the target does not recognize (none, when it cannot be asked)."""
    refused: set[str] = set()
    try:
        with conn.transaction(force_rollback=True):
            conn.execute(f"CREATE TEMPORARY TABLE {_PROBE} (c int)")
            for name, item in sorted(options.items()):
                try:
                    with conn.transaction():
                        conn.execute(f"ALTER TABLE {_PROBE} ALTER COLUMN c SET ({item})")
                except psycopg.errors.InvalidParameterValue as exc:
                    # A known option with a bad value is not ours to drop: the restore says so.
                    if "unrecognized parameter" in str(exc):
                        refused.add(name)
    except psycopg.Error:
        return set()  # no temporary table allowed: keep every option, as pg_restore would
    return refused


def _rewrite(sql: str, refused: set[str], left_out: LeftOut) -> str:
    def keep(match: re.Match[str]) -> str:
        items = _items(match["options"])
        kept = [item for item in items if _name(item) not in refused]
        if len(kept) == len(items):
            return match.group(0)
        for item in items:
            if _name(item) in refused:
                left_out.columns.setdefault(_name(item), []).append(f"{match['table']}.{match['column']}")
        return f"{match['head']}{', '.join(kept)});" if kept else ""

    return _SET_OPTIONS.sub(keep, sql)


def leave_out_unknown_attribute_options(
    conn: Conn, scripts: list[RestoreScript]
) -> tuple[list[RestoreScript], LeftOut]:
    """*scripts* without the column options the target's server refuses as unknown.

    :param conn: a target session (the probe's temporary table is rolled back).
    :param scripts: restore scripts about to be applied.
    :returns: the scripts to apply instead, and what was left out.
    """
    left_out = LeftOut()
    used = _used_options(scripts)
    if not used:
        return scripts, left_out
    refused = _refused(conn, used)
    if not refused:
        return scripts, left_out
    rewritten = [
        RestoreScript(
            script.header,
            [EntrySQL(e.entry, _rewrite(e.sql, refused, left_out), e.depends_on) for e in script.entries],
        )
        for script in scripts
    ]
    return rewritten, left_out
