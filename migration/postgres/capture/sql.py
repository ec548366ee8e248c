"""The SQL ferry installs on a source for change capture, and nothing else.

One schema (``ferry_capture`` by default; every name capture leaves is in
:mod:`migration.postgres.footprint`) holding the change log, the list of captured tables, a row
trigger function per table and one statement trigger function. They log *which keys* changed, never
values: apply re-reads the current row from the source, so the log stays small, carries no
re-encoded values, and applying an entry twice is harmless. A key update logs the old and the new
key. Every table also gets a ``BEFORE`` statement trigger: it logs a TRUNCATE, and under the fence
it refuses the statement before a single row is touched (so a refused write moves no write counter
and takes no transaction id). The functions are SECURITY DEFINER (owned by the installer) so every
role's writes are logged without granting the log to anyone, and the triggers are enabled
``ALWAYS``: a session with ``session_replication_role = replica`` (a superuser, a role granted
``SET`` on it, a logical replication worker) is logged and fenced like any other. The fence replaces
every function with one that refuses the write (no table lock: a function's new body is seen by
every session at its next statement), so the row path checks no fence flag while writes go on.

What is ours is found by identity, never by name: a schema is capture's when it carries
:data:`~migration.postgres.footprint.CAPTURE_MARK` as its comment, and a trigger is capture's when
its function lives in such a schema.
"""

from __future__ import annotations

from psycopg import sql

from migration.postgres.footprint import (
    CAPTURE_FENCE,
    CAPTURE_LAYOUT,
    CAPTURE_LOG,
    CAPTURE_MARK,
    CAPTURE_TABLES,
    STATEMENT_FUNCTION,
    in_capture,
    row_function_name,
    trigger_names,
)

__all__ = [
    "KEY_SETTINGS",
    "LAYOUT",
    "PASSAGE_FUNCTION",
    "SETTLED_TYPES",
    "create_schema",
    "enable_always",
    "passage_function",
    "row_function",
    "row_source",
    "row_trigger",
    "statement_function",
    "statement_source",
    "statement_trigger",
]

#: The layout this ferry installs (``ferry_capture.layout``); another one is refused, not guessed at.
LAYOUT = 2

#: The fence's one way through: :func:`passage_function` says whether this session holds the passage
#: (ferry's follower writing back into an old database that stays fenced to everyone else).
PASSAGE_FUNCTION = "passes"

_FENCED = """
    IF {passes}() THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'writes are stopped: this database is moving (ferry fence on %)', TG_TABLE_NAME
        USING ERRCODE = 'read_only_sql_transaction';"""


def _fenced(schema: str) -> sql.Composed:
    return sql.SQL(_FENCED).format(passes=in_capture(schema, PASSAGE_FUNCTION))


def passage_function(schema: str, digest: str | None) -> sql.Composed:
    """Whether the session's ``ferry.passage`` hashes to *digest* (``None``: no passage, nobody passes).

    Only the hash is written into the catalog, which every role may read; the passage itself comes
    with the follower's connection (:mod:`.passage`)."""
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {f}() RETURNS boolean LANGUAGE sql STABLE AS "
        "$body$ SELECT pg_catalog.md5(COALESCE(pg_catalog.current_setting('ferry.passage', true), '')) "
        "OPERATOR(pg_catalog.=) {digest} $body$;\nREVOKE ALL ON FUNCTION {f}() FROM PUBLIC;"
    ).format(f=in_capture(schema, PASSAGE_FUNCTION), digest=sql.Literal(digest or "no passage"))


def create_schema(schema: str) -> sql.Composed:
    s = sql.Identifier(schema)
    return sql.SQL("""
CREATE SCHEMA {s};
CREATE TABLE {s}.{layout_table} (version int NOT NULL);
INSERT INTO {s}.{layout_table} VALUES ({layout});
CREATE TABLE {s}.{log} (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rel oid NOT NULL,
    op "char" NOT NULL,
    old_key jsonb,
    new_key jsonb,
    -- The writing transaction's start (now() costs no clock read per row): the lag's measure.
    at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE TABLE {s}.{fence} (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    since timestamptz NOT NULL DEFAULT pg_catalog.now()
);
-- Every table of the source as capture found it: its key (empty: no key, fenced only), whether its
-- triggers fire ALWAYS, and the installing transaction (its id is the triggers' own xmin, so a trigger
-- disabled, enabled again or replaced since is told apart; and a copy's snapshot says whether it
-- was in place before the copy began).
CREATE TABLE {s}.{captured} (
    rel oid PRIMARY KEY,
    name text NOT NULL,
    key_columns text[] NOT NULL,
    always boolean NOT NULL,
    -- The key holds a type whose text depends on the writer's settings: its function pins them.
    pinned boolean NOT NULL DEFAULT false,
    xid bigint NOT NULL,
    -- Its storage as the follow last saw it: rewritten by DDL that fires no row trigger, it is copied again.
    storage oid,
    installed_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
{passage}
{statement}
COMMENT ON SCHEMA {s} IS {mark};
""").format(
        s=s,
        layout_table=sql.SQL(CAPTURE_LAYOUT),
        log=sql.SQL(CAPTURE_LOG),
        fence=sql.SQL(CAPTURE_FENCE),
        captured=sql.SQL(CAPTURE_TABLES),
        layout=sql.Literal(LAYOUT),
        passage=passage_function(schema, None),
        statement=statement_function(schema, fenced=False),
        mark=sql.Literal(CAPTURE_MARK),
    )


def statement_source(schema: str, *, fenced: bool) -> sql.Composable:
    """The statement trigger function's source (``prosrc``): a TRUNCATE logged (``TG_ARGV[0]``: the
    table has a key); fenced, every statement refused before it touches a row."""
    body = (
        _fenced(schema)
        if fenced
        else sql.SQL("""
    IF TG_OP OPERATOR(pg_catalog.=) 'TRUNCATE' AND TG_NARGS OPERATOR(pg_catalog.>) 0 THEN
        INSERT INTO {log} (rel, op) VALUES (TG_RELID, 'T');
    END IF;
    RETURN NULL;""").format(log=in_capture(schema, CAPTURE_LOG))
    )
    return sql.Composed([sql.SQL("\nBEGIN"), body, sql.SQL("\nEND\n")])


def statement_function(schema: str, *, fenced: bool) -> sql.Composed:
    s = sql.Identifier(schema)
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {s}.{f}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS "
        "$body${source}$body$;\nREVOKE ALL ON FUNCTION {s}.{f}() FROM PUBLIC;"
    ).format(s=s, f=sql.SQL(STATEMENT_FUNCTION), source=statement_source(schema, fenced=fenced))


def row_source(schema: str, key_columns: list[str], *, fenced: bool) -> sql.Composable:
    """One table's row trigger function's source (``prosrc``), written for its key: it reads the key's
    columns from the row, with no whole-row conversion, and checks no fence (the fence replaces it
    with one that refuses)."""
    head = sql.SQL("\nDECLARE\n    old_key pg_catalog.jsonb;\n    new_key pg_catalog.jsonb;\nBEGIN")
    tail = sql.SQL("\nEND\n")
    if fenced:
        return sql.Composed([head, _fenced(schema), tail])

    def key_of(row: str) -> sql.Composed:
        pairs = sql.SQL(", ").join(
            sql.SQL("{}, {}.{}").format(sql.Literal(c), sql.SQL(row), sql.Identifier(c)) for c in key_columns
        )
        return sql.SQL("pg_catalog.jsonb_build_object({})").format(pairs)

    body = sql.SQL("""
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
        new_key := {new};
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
        old_key := {old};
    ELSE
        new_key := {new};
        old_key := {old};
        IF old_key OPERATOR(pg_catalog.=) new_key THEN
            old_key := NULL;  -- the key stayed: one key to re-read
        END IF;
    END IF;
    INSERT INTO {log} (rel, op, old_key, new_key)
        VALUES (TG_RELID, pg_catalog.left(TG_OP, 1), old_key, new_key);
    RETURN NULL;""").format(log=in_capture(schema, CAPTURE_LOG), new=key_of("NEW"), old=key_of("OLD"))
    return sql.Composed([head, body, tail])


#: Written into the function of a table whose key holds a type whose text is the writer's settings' (a
#: range of dates, an interval, money, a float): the key is logged the same way whoever writes it,
#: and apply reads it back under the same settings (:data:`KEY_SETTINGS`).
KEY_SETTINGS = (
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "postgres"),
    ("TimeZone", "UTC"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("lc_monetary", "C"),
)
#: Key types whose JSON never depends on a session's settings (dates and times are always ISO in JSON).
SETTLED_TYPES = (
    "int2", "int4", "int8", "numeric", "oid", "text", "varchar", "bpchar", "name", "char", "uuid", "bool",
    "date", "timestamp", "timestamptz", "time", "timetz", "inet", "cidr", "macaddr", "macaddr8", "bit", "varbit",
)  # fmt: skip


def row_function(schema: str, rel: int, key_columns: list[str], *, fenced: bool, pinned: bool = False) -> sql.Composed:
    """Every name in the function is qualified, so it needs no ``SET search_path`` (which costs each
    call a settings save and restore) to be safe as SECURITY DEFINER. *pinned*: the key's text depends
    on session settings, and the function fixes them (:data:`KEY_SETTINGS`; only such tables pay for it)."""
    s = sql.Identifier(schema)
    name = sql.Identifier(row_function_name(rel))
    settings = sql.SQL("").join(
        sql.SQL(" SET {} TO {}").format(sql.Identifier(k.lower()), sql.Literal(v)) for k, v in KEY_SETTINGS
    )
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {s}.{name}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER{settings} AS "
        "$body${source}$body$;\nREVOKE ALL ON FUNCTION {s}.{name}() FROM PUBLIC;"
    ).format(
        s=s,
        name=name,
        settings=settings if pinned else sql.SQL(""),
        source=row_source(schema, key_columns, fenced=fenced),
    )


def row_trigger(schema: str, table: str, rel: int) -> sql.Composed:
    return sql.SQL(
        "CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {s}.{f}()"
    ).format(
        trigger=sql.Identifier(trigger_names(schema)[0]),
        table=sql.SQL(table),
        s=sql.Identifier(schema),
        f=sql.Identifier(row_function_name(rel)),
    )


def statement_trigger(schema: str, table: str, *, logs_truncate: bool) -> sql.Composed:
    """Before every write statement: the fence's say, and a TRUNCATE logged where the table has a key."""
    return sql.SQL(
        "CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION {s}.{f}({arg})"
    ).format(
        trigger=sql.Identifier(trigger_names(schema)[1]),
        table=sql.SQL(table),
        s=sql.Identifier(schema),
        f=sql.SQL(STATEMENT_FUNCTION),
        arg=sql.SQL("'log'" if logs_truncate else ""),
    )


def enable_always(table: str, trigger: str) -> sql.Composed:
    """Fire whatever the session's ``session_replication_role``: no role can write past capture by it."""
    return sql.SQL("ALTER TABLE {} ENABLE ALWAYS TRIGGER {}").format(sql.SQL(table), sql.Identifier(trigger))
