"""The freeze's witness: what the source looked like as its writes stopped, from what capture does not control.

The verify inside the freeze compares what the change log names. A write that never reached the
log — by the table owner with capture's trigger disabled for a moment, by DDL, through a large
object, by a transaction prepared before the fence — is invisible to it, so the freeze keeps a
second, independent account, read from the catalog and the server's own bookkeeping, never from
the log:

- **identity**: every table's oid, name, storage (``relfilenode``) and the ``xmin`` of its
  ``pg_class``, ``pg_attribute`` and ``pg_trigger`` rows. Any ``ALTER TABLE`` (``DISABLE
  TRIGGER`` and ``ENABLE`` again included) writes new catalog rows with another ``xmin``, so a
  change and its undoing still show; a digest of the rest of the catalog (schemas, types,
  functions — capture's own too —, constraints, indexes, rules, policies, large objects' metadata);
- **transactions**: the server's transaction snapshot once every transaction older than the fence
  had ended. Every transaction that has written anything since has an id past it; ferry's own are
  known (the marker, each batch's clearing transaction, recorded on the target). When no other one
  committed, nothing on the server changed;
- **write counters** (``pg_stat_user_tables``): they lag (a session reports its counts when it goes
  idle, up to seconds later), so they only point at tables to compare in full when some other
  transaction did commit.

:func:`take_witness` is taken by the fence as writes stop; :func:`check_witness` compares it with
the source as it is now and says what changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from migration.postgres.catalog import Conn

__all__ = ["Identity", "Witness", "WitnessFindings", "check_witness", "read_identity", "take_witness"]

# These queries take no parameters: a % is a %.
_USER = (
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg\\_temp\\_%' "
    "AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'"
)
_TABLES = f"""
SELECT c.oid::int, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::text, c.relfilenode::bigint,
       c.xmin::text,
       (SELECT pg_catalog.md5(coalesce(string_agg(a.attnum || ':' || a.xmin::text, ',' ORDER BY a.attnum), ''))
          FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid),
       (SELECT pg_catalog.md5(coalesce(string_agg(t.oid || ':' || t.tgenabled::text || ':' || t.xmin::text, ','
                                                  ORDER BY t.oid), ''))
          FROM pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid),
       coalesce(s.n_tup_ins, 0) + 0, coalesce(s.n_tup_upd, 0) + 0, coalesce(s.n_tup_del, 0) + 0
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_stat_user_tables s ON s.relid = c.oid
 WHERE c.relkind IN ('r', 'p', 'm') AND {_USER}
"""


def _digest(rows: str) -> str:
    return f"SELECT pg_catalog.md5(coalesce(string_agg(v, ',' ORDER BY v), '')) FROM ({rows}) x(v)"


_CATALOGS = {
    "schemas": _digest("SELECT n.oid || ':' || n.xmin::text FROM pg_catalog.pg_namespace n WHERE " + _USER),
    "relations": _digest(
        "SELECT c.oid || ':' || c.xmin::text FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relkind NOT IN ('r', 'p', 'm', 't') AND " + _USER
    ),
    "types": _digest(
        "SELECT t.oid || ':' || t.xmin::text FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n "
        "ON n.oid = t.typnamespace WHERE " + _USER
    ),
    "functions": _digest(
        "SELECT p.oid || ':' || p.xmin::text FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n "
        "ON n.oid = p.pronamespace WHERE " + _USER
    ),
    # Of user schemas only: a temporary table's constraints, indexes or defaults are no change to the
    # database (an app may make them under the fence: they take no write the fence refuses).
    "constraints": _digest(
        "SELECT o.oid || ':' || o.xmin::text FROM pg_catalog.pg_constraint o JOIN pg_catalog.pg_namespace n "
        "ON n.oid = o.connamespace WHERE " + _USER
    ),
    "indexes": _digest(
        "SELECT i.indexrelid || ':' || i.xmin::text FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c "
        "ON c.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE " + _USER
    ),
    "rules": _digest(
        "SELECT r.oid || ':' || r.xmin::text FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c "
        "ON c.oid = r.ev_class JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE " + _USER
    ),
    "policies": _digest(
        "SELECT p.oid || ':' || p.xmin::text FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_class c "
        "ON c.oid = p.polrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE " + _USER
    ),
    "inheritance": _digest(
        "SELECT h.inhrelid || ':' || h.inhparent || ':' || h.xmin::text FROM pg_catalog.pg_inherits h "
        "JOIN pg_catalog.pg_class c ON c.oid = h.inhrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "WHERE " + _USER
    ),
    "defaults": _digest(
        "SELECT d.oid || ':' || d.xmin::text FROM pg_catalog.pg_attrdef d JOIN pg_catalog.pg_class c "
        "ON c.oid = d.adrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE " + _USER
    ),
    "sequences": _digest(
        "SELECT q.seqrelid || ':' || q.xmin::text FROM pg_catalog.pg_sequence q JOIN pg_catalog.pg_class c "
        "ON c.oid = q.seqrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE " + _USER
    ),
    "extensions": _digest("SELECT oid || ':' || xmin::text FROM pg_catalog.pg_extension"),
    "large objects": _digest("SELECT oid || ':' || xmin::text FROM pg_catalog.pg_largeobject_metadata"),
}


@dataclass(frozen=True)
class Identity:
    """Tables by oid (``[name, relkind, relfilenode, class xmin, columns digest, triggers digest]``), their
    write counters (``[inserted, updated, deleted]``), and a digest per other catalog."""

    tables: dict[int, list[Any]]
    counters: dict[int, list[int]]
    catalogs: dict[str, str]


@dataclass(frozen=True)
class Witness:
    """What the source looked like as its writes stopped (kept in the run's state: JSON, no secret).

    :param snapshot: the server's transaction snapshot once every older transaction had ended.
    :param ours: ferry's own transactions on the source since (the marker).
    """

    identity: Identity
    snapshot: str
    ours: tuple[int, ...] = ()

    def with_ours(self, *xids: int) -> Witness:
        return replace(self, ours=(*self.ours, *xids))

    def to_json(self) -> dict[str, Any]:
        return {
            "tables": {str(k): v for k, v in self.identity.tables.items()},
            "counters": {str(k): v for k, v in self.identity.counters.items()},
            "catalogs": self.identity.catalogs,
            "snapshot": self.snapshot,
            "ours": list(self.ours),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Witness:
        identity = Identity(
            {int(k): list(v) for k, v in data["tables"].items()},
            {int(k): [int(x) for x in v] for k, v in data["counters"].items()},
            dict(data["catalogs"]),
        )
        return cls(identity, str(data["snapshot"]), tuple(int(x) for x in data.get("ours", ())))


def read_identity(conn: Conn, schema: str = "") -> Identity:
    """The source's identity now (*conn*: autocommit; each query sees what is committed)."""
    conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")  # the counters as they are, not as cached
    tables: dict[int, list[Any]] = {}
    counters: dict[int, list[int]] = {}
    for oid, name, kind, node, xmin, columns, triggers, ins, upd, dele in conn.execute(_TABLES):
        tables[int(oid)] = [str(name), str(kind), int(node), str(xmin), str(columns), str(triggers)]
        counters[int(oid)] = [int(ins), int(upd), int(dele)]
    catalogs = {}
    for name, query in _CATALOGS.items():
        if name == "sequences" and conn.info.server_version < 100000:
            continue  # pg_sequence is PostgreSQL 10's
        row = conn.execute(query).fetchone()
        catalogs[name] = str(row[0]) if row else ""
    return Identity(tables, counters, catalogs)


def take_witness(conn: Conn, identity: Identity, ours: tuple[int, ...] = ()) -> Witness:
    """The witness of a source whose writes just stopped: *identity* read as they stopped, and the
    transaction snapshot now (every transaction older than the freeze has ended)."""
    row = conn.execute("SELECT pg_catalog.txid_current_snapshot()::text").fetchone()
    assert row is not None
    return Witness(identity, str(row[0]), ours)


@dataclass
class WitnessFindings:
    """What changed on the source since the witness was taken.

    :param changed: changes no comparison can clear (DDL, a trigger touched, a prepared transaction):
        the switch must not happen.
    :param rewritten: tables whose storage was rewritten (VACUUM FULL, or a TRUNCATE past the fence):
        to compare in full.
    :param moved: tables whose write counters moved: to compare in full when ``foreign_commits``.
    :param foreign_commits: transactions not ferry's that committed on the server since (any database).
    :param ended: sessions of this database holding a transaction id, ended (their writes unacknowledged).
    """

    changed: list[str] = field(default_factory=list)
    rewritten: list[str] = field(default_factory=list)
    moved: list[str] = field(default_factory=list)
    foreign_commits: int = 0
    ended: int = 0


def _compare_tables(before: dict[int, list[Any]], now: dict[int, list[Any]], findings: WitnessFindings) -> None:
    for oid, entry in sorted(before.items(), key=lambda item: str(item[1][0])):
        name = entry[0]
        current = now.get(oid)
        if current is None:
            findings.changed.append(f"{name} was dropped (or rebuilt) during the freeze")
        elif current[0] != name:
            findings.changed.append(f"{name} was renamed to {current[0]} during the freeze")
        elif current[4] != entry[4]:
            findings.changed.append(f"the columns of {name} changed during the freeze")
        elif current[5] != entry[5]:
            findings.changed.append(
                f"a trigger of {name} was disabled, enabled, created or dropped during the freeze "
                "(its writes may have passed the fence)"
            )
        elif current[2] != entry[2]:
            findings.rewritten.append(name)  # new storage, same shape: VACUUM FULL, CLUSTER, a TRUNCATE
        elif current[3] != entry[3]:
            findings.changed.append(f"{name} was altered during the freeze")
    for oid in sorted(now.keys() - before.keys(), key=lambda o: str(now[o][0])):
        findings.changed.append(f"{now[oid][0]} was created during the freeze")


_SPAN = "SELECT txid_snapshot_xmax(%s::txid_snapshot), txid_snapshot_xmax(txid_current_snapshot())"
_FOREIGN = """
SELECT count(*) FROM (SELECT pg_catalog.txid_snapshot_xip(%(snapshot)s::txid_snapshot)
                      UNION SELECT pg_catalog.generate_series(%(low)s::bigint, %(high)s::bigint - 1)) c(x)
 WHERE x <> ALL(%(ours)s::bigint[]) AND pg_catalog.txid_status(x) = 'committed'
"""
# Sessions of this database whose transaction has written (its own transaction id locked): seen in
# pg_locks by every role, whatever pg_stat_activity hides of other roles' sessions.
_HOLDERS = """
SELECT l.pid FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'transactionid' AND l.granted AND l.mode = 'ExclusiveLock' AND a.datname = current_database()
   AND a.usename IS NOT NULL AND l.pid <> pg_catalog.pg_backend_pid()
"""
_PREPARED = "SELECT gid FROM pg_catalog.pg_prepared_xacts WHERE database = current_database() ORDER BY prepared"
#: Past this many transaction ids since the freeze, they are not looked at one by one: taken as foreign.
_MAX_XIDS = 2_000_000


def check_witness(conn: Conn, witness: Witness, ours: set[int], schema: str = "") -> WitnessFindings:
    """Compare the source now with *witness* (*conn*: autocommit). *ours*: ferry's own transactions
    besides the witness's. Sessions of this database that hold a transaction id are ended first
    (inside the freeze, only a write past the fence or a row lock gives one): what they hold is not
    acknowledged, and cannot commit after the switch."""
    findings = WitnessFindings()
    _end_writers(conn, findings)
    now = read_identity(conn, schema)
    _compare_tables(witness.identity.tables, now.tables, findings)
    for name, digest in witness.identity.catalogs.items():
        if now.catalogs.get(name) != digest:
            findings.changed.append(f"the source's {name} changed during the freeze (DDL, or a large object)")
    for (gid,) in conn.execute(_PREPARED).fetchall():
        findings.changed.append(f"a transaction was prepared during the freeze (gid {gid!r}): it may commit later")
    findings.foreign_commits = _foreign_commits(conn, witness.snapshot, {*ours, *witness.ours})
    for oid, before in witness.identity.counters.items():
        after = now.counters.get(oid)
        if after is not None and any(a > b for a, b in zip(after, before, strict=True)):
            findings.moved.append(str(witness.identity.tables[oid][0]))
    return findings


def _end_writers(conn: Conn, findings: WitnessFindings) -> None:
    for (pid,) in conn.execute(_HOLDERS).fetchall():
        try:
            with conn.transaction():
                conn.execute("SELECT pg_catalog.pg_terminate_backend(%s)", (pid,))
            findings.ended += 1
        except psycopg.errors.InsufficientPrivilege:
            findings.changed.append(
                f"a transaction with writes is open on the source (server pid {pid}) and ferry's role may not end it"
            )
    deadline = time.monotonic() + 10
    while findings.ended and conn.execute(_HOLDERS).fetchone() is not None and time.monotonic() < deadline:
        time.sleep(0.05)


def _foreign_commits(conn: Conn, snapshot: str, ours: set[int]) -> int:
    """Transactions that were running at *snapshot* or began after it, committed since, and are not *ours*."""
    span = conn.execute(_SPAN, (snapshot,)).fetchone()
    assert span is not None
    low, high = int(span[0]), int(span[1])
    if high - low > _MAX_XIDS:
        return high - low
    row = conn.execute(_FOREIGN, {"snapshot": snapshot, "low": low, "high": high, "ours": sorted(ours)}).fetchone()
    return int(row[0]) if row else 0
