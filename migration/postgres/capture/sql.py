"""The SQL ferry installs on a source for change capture, and nothing else.

One schema (``ferry_capture`` by default) holding the change log, the list of captured
tables, a row trigger function per table and one statement trigger function. They log
*which keys* changed, never values: apply re-reads the current row from the source, so the
log stays small, carries no re-encoded values, and applying an entry twice is harmless. A
key update logs the old and the new key; TRUNCATE is logged by a statement trigger. The
functions are SECURITY DEFINER (owned by the installer) so every role's writes are logged
without granting the log to anyone. The fence replaces every one of them with a function
that refuses the write (no table lock: a function's new body is seen by every session at
its next statement), so the row path checks no fence flag while writes go on.
"""

from __future__ import annotations

from psycopg import sql

__all__ = [
    "DEFAULT_SCHEMA",
    "FENCE_TRIGGER",
    "MARK",
    "ROW_TRIGGER",
    "TRIGGERS",
    "TRUNCATE_TRIGGER",
    "create_schema",
    "fence_trigger",
    "row_function",
    "row_function_name",
    "row_trigger",
    "statement_function",
    "truncate_trigger",
]

#: Where capture lives on the source unless told otherwise (``--capture-schema``).
DEFAULT_SCHEMA = "ferry_capture"
#: The schema's comment: only a schema carrying it is ever dropped by ``remove``.
MARK = "ferry change capture; ferry pg capture remove takes it off"
ROW_TRIGGER = "ferry_capture_row"
FENCE_TRIGGER = "ferry_capture_fence"
TRUNCATE_TRIGGER = "ferry_capture_truncate"
#: Every trigger of ours: left behind by the copy, ignored by verify, dropped by ``remove``.
TRIGGERS = (ROW_TRIGGER, TRUNCATE_TRIGGER, FENCE_TRIGGER)


_FENCED = """
    RAISE EXCEPTION 'writes are stopped: this database is moving (ferry fence on %)', TG_TABLE_NAME
        USING ERRCODE = 'read_only_sql_transaction';"""


def create_schema(schema: str) -> sql.Composed:
    s = sql.Identifier(schema)
    return sql.SQL("""
CREATE SCHEMA {s};
CREATE TABLE {s}.log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rel oid NOT NULL,
    op "char" NOT NULL,
    old_key jsonb,
    new_key jsonb,
    -- The writing transaction's start (now() costs no clock read per row): the lag's measure.
    at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE TABLE {s}.fence (
    id int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    since timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE TABLE {s}.captured (
    rel oid PRIMARY KEY,
    name text NOT NULL,
    key_columns text[] NOT NULL,
    installed_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
{statement}
COMMENT ON SCHEMA {s} IS {mark};
""").format(s=s, statement=statement_function(schema, fenced=False), mark=sql.Literal(MARK))


def statement_function(schema: str, *, fenced: bool) -> sql.Composed:
    """The statement triggers' function: logs a TRUNCATE; on a table without a key only the fence
    has a say. Fenced, it refuses every statement."""
    s = sql.Identifier(schema)
    body = (
        _FENCED
        if fenced
        else """
    IF TG_WHEN OPERATOR(pg_catalog.=) 'BEFORE' THEN
        RETURN NULL;  -- a table without a key: fenced, not logged
    END IF;
    INSERT INTO {s}.log (rel, op) VALUES (TG_RELID, 'T');
    RETURN NULL;"""
    )
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {s}.log_statement() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $body$\n"
        "BEGIN" + body + "\nEND\n$body$;\nREVOKE ALL ON FUNCTION {s}.log_statement() FROM PUBLIC;"
    ).format(s=s)


def row_function_name(rel: int) -> str:
    return f"log_row_{int(rel)}"


def row_function(schema: str, rel: int, key_columns: list[str], *, fenced: bool) -> sql.Composed:
    """One table's row trigger function, written for its key: it reads the key's columns from the
    row, with no whole-row conversion, and checks no fence (the fence replaces it with one that
    refuses). Every name in it is qualified, so it needs no ``SET search_path`` (which costs each
    call a settings save and restore) to be safe as SECURITY DEFINER."""
    s = sql.Identifier(schema)

    def key_of(row: str) -> sql.Composed:
        pairs = sql.SQL(", ").join(
            sql.SQL("{}, {}.{}").format(sql.Literal(c), sql.SQL(row), sql.Identifier(c)) for c in key_columns
        )
        return sql.SQL("pg_catalog.jsonb_build_object({})").format(pairs)

    body: sql.Composable = (
        sql.SQL(_FENCED)
        if fenced
        else sql.SQL("""
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
    INSERT INTO {s}.log (rel, op, old_key, new_key)
        VALUES (TG_RELID, pg_catalog.left(TG_OP, 1), old_key, new_key);
    RETURN NULL;""").format(s=s, new=key_of("NEW"), old=key_of("OLD"))
    )
    name = sql.Identifier(row_function_name(rel))
    return sql.SQL(
        "CREATE OR REPLACE FUNCTION {s}.{name}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $body$\n"
        "DECLARE\n    old_key pg_catalog.jsonb;\n    new_key pg_catalog.jsonb;\nBEGIN{body}\nEND\n$body$;\n"
        "REVOKE ALL ON FUNCTION {s}.{name}() FROM PUBLIC;"
    ).format(s=s, name=name, body=body)


def row_trigger(schema: str, table: str, rel: int) -> sql.Composed:
    return sql.SQL(
        "CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {s}.{f}()"
    ).format(
        trigger=sql.Identifier(ROW_TRIGGER),
        table=sql.SQL(table),
        s=sql.Identifier(schema),
        f=sql.Identifier(row_function_name(rel)),
    )


def truncate_trigger(schema: str, table: str) -> sql.Composed:
    return sql.SQL(
        "CREATE TRIGGER {trigger} AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {s}.log_statement()"
    ).format(trigger=sql.Identifier(TRUNCATE_TRIGGER), table=sql.SQL(table), s=sql.Identifier(schema))


def fence_trigger(schema: str, table: str) -> sql.Composed:
    """On a table without a key: nothing is logged, but the fence stops its writes too."""
    return sql.SQL(
        "CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION {s}.log_statement()"
    ).format(trigger=sql.Identifier(FENCE_TRIGGER), table=sql.SQL(table), s=sql.Identifier(schema))
