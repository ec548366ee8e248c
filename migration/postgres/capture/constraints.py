"""The target's foreign keys and triggers while the follow applies batches, for roles that cannot pause them.

A batch writes each table's rows in turn, so between two statements a child row may point at
a parent not written yet, and the target's own triggers would fire on rows that are copies.
Where the target's role may set ``session_replication_role = replica`` (a superuser, RDS's
``rds_superuser``) both pause for the batch and nothing is needed here. Otherwise the follow
takes the foreign keys off the target and disables its user triggers, keeping their
definitions in the follow's record (``_ferry_follow``, named in :mod:`migration.postgres.footprint`);
once the last change is applied they come back: triggers
enabled and foreign keys added ``NOT VALID`` (instant: no row is read), then validated,
which reads the rows without stopping writes, after the unfreeze. Each step is one target
transaction with its record, so a crash anywhere leaves either the old or the new state.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from migration.crashpoints import crashpoint
from migration.postgres.catalog import Conn
from migration.postgres.footprint import (
    FERRY_SCHEMAS,
    FOLLOW_FOREIGN_KEYS,
    FOLLOW_SCHEMA,
    FOLLOW_TRIGGERS,
    NOT_OUR_TRIGGER,
)

__all__ = [
    "await_validation",
    "can_pause_per_batch",
    "forget_follow",
    "pause_constraints",
    "pause_replica_triggers",
    "restore_constraints",
    "validate_constraints",
]

_USER_TABLES = (
    r"""
  JOIN pg_catalog.pg_class c ON c.oid = {rel} JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', """
    + ", ".join(f"'{s}'" for s in FERRY_SCHEMAS)
    + r""") AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend x WHERE x.classid = 'pg_catalog.pg_class'::regclass
                   AND x.objid = c.oid AND x.deptype = 'e')
"""
)
_FOREIGN_KEYS = (
    "SELECT format('%I.%I', n.nspname, c.relname), o.conname, pg_catalog.pg_get_constraintdef(o.oid) "
    "FROM pg_catalog.pg_constraint o" + _USER_TABLES.format(rel="o.conrelid") + " AND o.contype = 'f'"
    " AND o.conparentid = 0 ORDER BY 1, 2"
)
_TRIGGERS = (
    "SELECT format('%I.%I', n.nspname, c.relname), t.tgname, t.tgenabled FROM pg_catalog.pg_trigger t"
    + _USER_TABLES.format(rel="t.tgrelid")
    # Capture's own stay: on an old database followed back into, they are its fence.
    + " AND NOT t.tgisinternal AND t.tgenabled <> 'D' AND t.tgparentid = 0 AND "
    + NOT_OUR_TRIGGER
    + " ORDER BY 1, 2"
)


def can_pause_per_batch(target: Conn) -> bool:
    """Whether the target's role may set ``session_replication_role`` (foreign keys and triggers pause per batch)."""
    try:
        with target.transaction():
            target.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


def _prepare(target: Conn) -> None:
    target.execute(
        f"CREATE TABLE IF NOT EXISTS {FOLLOW_FOREIGN_KEYS} (rel text NOT NULL, name text NOT NULL, "
        "definition text NOT NULL, state text NOT NULL DEFAULT 'dropped', PRIMARY KEY (rel, name)); "
        f"CREATE TABLE IF NOT EXISTS {FOLLOW_TRIGGERS} (rel text NOT NULL, name text NOT NULL, PRIMARY KEY (rel, name)); "
        # How it fired: ENABLE (O), ENABLE ALWAYS (A) or ENABLE REPLICA (R) comes back as it was.
        f"ALTER TABLE {FOLLOW_TRIGGERS} ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT 'O'"
    )


_ENABLE = {"A": "ENABLE ALWAYS", "R": "ENABLE REPLICA"}


def _disable(target: Conn, triggers: list[tuple[str, str, str]]) -> None:
    for rel, name, mode in triggers:
        target.execute(
            f"INSERT INTO {FOLLOW_TRIGGERS} (rel, name, mode) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (rel, name, mode),
        )
        target.execute(sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(sql.SQL(rel), sql.Identifier(name)))


def pause_replica_triggers(target: Conn) -> int:
    """Where batches pause the target's triggers by ``session_replication_role``: those that fire all the same
    (``ENABLE ALWAYS``, ``ENABLE REPLICA``: an audit trigger would write rows the app never did) are disabled
    and recorded, to come back as they were with the foreign keys. Returns how many."""
    _prepare(target)
    with target.transaction():
        target.execute("SET LOCAL search_path = ''")
        triggers = [(str(r), str(n), str(m)) for r, n, m in target.execute(_TRIGGERS) if str(m) in _ENABLE]
        _disable(target, triggers)
    return len(triggers)


def pause_constraints(target: Conn) -> int:
    """Take the foreign keys off and disable the user triggers, recording both; returns how many."""
    _prepare(target)
    with target.transaction():
        target.execute("SET LOCAL search_path = ''")  # definitions with every name qualified
        keys = target.execute(_FOREIGN_KEYS).fetchall()
        triggers = target.execute(_TRIGGERS).fetchall()
        for rel, name, definition in keys:
            # A key restored NOT VALID by an earlier follow says so in its definition.
            definition = definition.removesuffix(" NOT VALID")
            target.execute(
                f"INSERT INTO {FOLLOW_FOREIGN_KEYS} (rel, name, definition) VALUES (%s, %s, %s) "
                "ON CONFLICT (rel, name) DO UPDATE SET definition = excluded.definition, state = 'dropped'",
                (rel, name, definition),
            )
            target.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.SQL(rel), sql.Identifier(name)))
        _disable(target, [(str(r), str(n), str(m)) for r, n, m in triggers])
        crashpoint("constraints-pausing")
    return len(keys) + len(triggers)


def restore_constraints(target: Conn) -> int:
    """Inside the freeze, after the last change: triggers enabled, foreign keys back ``NOT VALID``."""
    _prepare(target)
    with target.transaction():
        target.execute("SET LOCAL search_path = ''")
        for rel, name, mode in target.execute(f"SELECT rel, name, mode FROM {FOLLOW_TRIGGERS}").fetchall():
            enable = sql.SQL(_ENABLE.get(str(mode), "ENABLE"))
            target.execute(sql.SQL("ALTER TABLE {} {} TRIGGER {}").format(sql.SQL(rel), enable, sql.Identifier(name)))
        target.execute(f"DELETE FROM {FOLLOW_TRIGGERS}")
        dropped = target.execute(
            f"SELECT rel, name, definition, (SELECT c.relkind = 'p' FROM pg_catalog.pg_class c WHERE c.oid = rel::regclass) "
            f"FROM {FOLLOW_FOREIGN_KEYS} WHERE state = 'dropped'"
        ).fetchall()
        for rel, name, definition, partitioned in dropped:
            # Before PostgreSQL 18 a partitioned table takes no NOT VALID foreign key: added valid there
            # (its rows are read now), and nothing is left to validate.
            valid_now = bool(partitioned) and target.info.server_version < 180000
            target.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}{}").format(
                    sql.SQL(rel), sql.Identifier(name), sql.SQL(definition), sql.SQL("" if valid_now else " NOT VALID")
                )
            )
            if valid_now:
                target.execute(f"DELETE FROM {FOLLOW_FOREIGN_KEYS} WHERE rel = %s AND name = %s", (rel, name))
        target.execute(f"UPDATE {FOLLOW_FOREIGN_KEYS} SET state = 'not valid' WHERE state = 'dropped'")
        crashpoint("constraints-restoring")
    return len(dropped)


def await_validation(target: Conn, keys: list[tuple[str, str]]) -> int:
    """Foreign keys a resumed copy added ``NOT VALID`` (the rows of its two snapshots disagreed): recorded
    like the follow's own, so verify calls them pending, and they are validated once the follow has
    brought the changes (when it stops, or at the run's cleanup). Returns how many."""
    if not keys:
        return 0
    _prepare(target)
    with target.transaction():
        target.execute("SET LOCAL search_path = ''")
        for rel, name in keys:
            target.execute(
                f"INSERT INTO {FOLLOW_FOREIGN_KEYS} (rel, name, definition, state) "
                "SELECT %s, %s, pg_catalog.pg_get_constraintdef(o.oid), 'not valid' FROM pg_catalog.pg_constraint o "
                "WHERE o.conrelid = %s::regclass AND o.conname = %s ON CONFLICT (rel, name) DO NOTHING",
                (rel, name, rel, name),
            )
    return len(keys)


def _recorded(target: Conn) -> bool:
    row = target.execute("SELECT pg_catalog.to_regclass(%s) IS NOT NULL", (FOLLOW_FOREIGN_KEYS,)).fetchone()
    return row is not None and bool(row[0])


def validate_constraints(target: Conn) -> int:
    """After the unfreeze: each foreign key validated (reads rows, lets writes go on); returns how many."""
    if not _recorded(target):
        return 0
    pending = target.execute(f"SELECT rel, name FROM {FOLLOW_FOREIGN_KEYS} WHERE state = 'not valid'").fetchall()
    for rel, name in pending:
        with target.transaction():
            row = target.execute(
                f"SELECT state FROM {FOLLOW_FOREIGN_KEYS} WHERE rel = %s AND name = %s", (rel, name)
            ).fetchone()
            if row is None or row[0] != "not valid":
                continue
            target.execute(sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(sql.SQL(rel), sql.Identifier(name)))
            target.execute(f"DELETE FROM {FOLLOW_FOREIGN_KEYS} WHERE rel = %s AND name = %s", (rel, name))
        crashpoint("constraint-validated")
    return len(pending)


def forget_follow(target: Conn) -> bool:
    """Drop the follow's record on the target once nothing in it is needed (no foreign key left to put
    back or to validate). Returns whether it was dropped."""
    if _recorded(target):
        row = target.execute(f"SELECT EXISTS (SELECT FROM {FOLLOW_FOREIGN_KEYS})").fetchone()
        if row and row[0]:
            return False
    target.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(FOLLOW_SCHEMA)))
    return True
