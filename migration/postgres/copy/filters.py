"""A filtered copy brings what its tables need, or says in one line what is missing.

``pg_dump -t``/``-n`` dump the chosen relations and nothing they depend on: not the
sequences their defaults draw from, not the types, domains and functions of their
columns, defaults and checks, not their schema or the extensions those come from. A
restore then fails halfway on ``…_seq does not exist``. ferry follows the source's
``pg_depend`` from the chosen relations and takes what they need from a second,
unfiltered schema dump by catalog oid (a sequence's values are then copied too). A
view or materialized view whose query reads a relation the filters leave out cannot be
created at all: that is one line naming both.
"""

from __future__ import annotations

from dataclasses import dataclass

from migration.errors import UsageError
from migration.postgres.catalog import Conn
from migration.postgres.copy.schema import PG_CLASS, SchemaDump, TocEntry

__all__ = ["Needs", "needs_of", "support_entries"]

PG_TYPE, PG_PROC, PG_NAMESPACE, PG_EXTENSION, PG_COLLATION = 1247, 1255, 2615, 3079, 3456

# The objects a relation is made of depend on it 'a'uto or 'i'nternal (defaults, constraints,
# indexes, triggers, a view's rule, owned sequences); what those use, they depend on 'n'ormally.
# A foreign key's reference is left out: one to a table not copied is dropped with a warning.
_CLOSURE = """
WITH RECURSIVE reached(classid, objid) AS (
    SELECT 'pg_class'::regclass::oid, r FROM unnest(%(relations)s::oid[]) AS r
  UNION
    SELECT step.classid, step.objid FROM reached,
    LATERAL (
        SELECT d.classid, d.objid FROM pg_depend d
         WHERE d.refclassid = reached.classid AND d.refobjid = reached.objid AND d.deptype IN ('a', 'i')
           AND reached.classid = 'pg_class'::regclass
      UNION ALL
        SELECT d.refclassid, d.refobjid FROM pg_depend d
         WHERE d.classid = reached.classid AND d.objid = reached.objid AND d.deptype = 'n'
           AND NOT (d.classid = 'pg_constraint'::regclass
                    AND (SELECT contype FROM pg_constraint WHERE oid = d.objid) = 'f'
                    AND d.refclassid = 'pg_class'::regclass)
           AND NOT (d.refclassid = 'pg_class'::regclass AND d.refobjid = ANY(%(relations)s::oid[]))
      UNION ALL
        SELECT 'pg_extension'::regclass::oid, d.refobjid FROM pg_depend d
         WHERE d.classid = reached.classid AND d.objid = reached.objid AND d.deptype = 'e'
    ) AS step
    WHERE step.classid IN ('pg_class'::regclass, 'pg_type'::regclass, 'pg_proc'::regclass,
                           'pg_namespace'::regclass, 'pg_extension'::regclass, 'pg_collation'::regclass,
                           'pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_rewrite'::regclass,
                           'pg_trigger'::regclass)
)
SELECT r.classid::int, r.objid::int, c.relkind::text,
       CASE WHEN c.oid IS NOT NULL THEN format('%%I.%%I', n.nspname, c.relname) END,
       -- an identity column's sequence comes with its table
       EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_class'::regclass AND i.objid = r.objid
                  AND i.refclassid = 'pg_class'::regclass AND i.deptype = 'i'),
       -- OWNED BY a chosen table (then its OWNED BY comes along)
       EXISTS (SELECT 1 FROM pg_depend o WHERE o.classid = 'pg_class'::regclass AND o.objid = r.objid
                  AND o.refclassid = 'pg_class'::regclass AND o.deptype = 'a'
                  AND o.refobjid = ANY(%(relations)s::oid[])),
       -- which chosen view or materialized view reads it (for the one-line error)
       (SELECT format('%%I.%%I', n.nspname, v.relname) FROM pg_depend d
          JOIN pg_rewrite w ON w.oid = d.objid JOIN pg_class v ON v.oid = w.ev_class
          JOIN pg_namespace n ON n.oid = v.relnamespace
         WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass
           AND d.refobjid = r.objid AND v.oid = ANY(%(relations)s::oid[]) LIMIT 1),
       EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = r.classid AND e.objid = r.objid AND e.deptype = 'e')
  FROM reached r
  LEFT JOIN pg_class c ON r.classid = 'pg_class'::regclass AND c.oid = r.objid
  LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
"""

_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table"}


@dataclass(frozen=True)
class Needs:
    """What the chosen relations need beyond themselves.

    :param objects: ``(catalog, oid)`` of sequences, schemas, types, functions, collations
        and extensions to take from an unfiltered dump.
    :param owned_sequences: oids of those sequences owned by a chosen table.
    """

    objects: frozenset[tuple[int, int]]
    owned_sequences: frozenset[int]

    @property
    def sequence_oids(self) -> list[int]:
        return sorted(oid for catalog, oid in self.objects if catalog == PG_CLASS)


def needs_of(holder: Conn, dump: SchemaDump) -> Needs:
    """Follow the source's dependencies from every relation in the filtered *dump*.

    :raises UsageError: when a chosen view reads a relation the filters leave out.
    """
    relations = [e.oid for e in dump.pre_data if e.catalog == PG_CLASS]
    rows = holder.execute(_CLOSURE, {"relations": relations}).fetchall()
    owned: set[int] = set()
    objects: set[tuple[int, int]] = set()
    for catalog, oid, kind, name, identity, owned_by_chosen, read_by, extension_member in rows:
        if catalog == PG_CLASS and kind is not None and oid not in relations:
            if kind == "S" and not identity:
                objects.add((PG_CLASS, int(oid)))
                if owned_by_chosen:
                    owned.add(int(oid))
            elif read_by is not None and kind in _KINDS:
                raise UsageError(
                    f"{read_by} reads {_KINDS[kind]} {name}, which the table filters leave out: "
                    f"copy {name} too, or leave {read_by} out as well",
                    side="source",
                )
        elif catalog == PG_EXTENSION or (
            catalog in (PG_TYPE, PG_PROC, PG_NAMESPACE, PG_COLLATION) and not extension_member
        ):
            objects.add((int(catalog), int(oid)))
    return Needs(frozenset(objects), frozenset(owned))


def support_entries(full: SchemaDump, filtered: SchemaDump, needs: Needs) -> list[TocEntry]:
    """The pre-data entries of the unfiltered dump that *needs* names and *filtered* lacks."""
    present = {(e.catalog, e.oid) for e in filtered.pre_data}
    chosen = [
        e
        for e in full.pre_data
        if (e.catalog, e.oid) in needs.objects
        and (e.catalog, e.oid) not in present
        and e.desc in _SUPPORT
        and not (e.desc == "SCHEMA" and e.rest.startswith("- public "))
    ]
    owned = {e.rest for e in chosen if e.desc == "SEQUENCE" and e.oid in needs.owned_sequences}
    chosen_ids = {e.dump_id for e in chosen}
    return [e for e in full.pre_data if e.dump_id in chosen_ids or (e.desc == "SEQUENCE OWNED BY" and e.rest in owned)]


_SUPPORT = (
    "SCHEMA", "EXTENSION", "TYPE", "DOMAIN", "FUNCTION", "PROCEDURE", "AGGREGATE", "COLLATION", "SEQUENCE",
)  # fmt: skip
