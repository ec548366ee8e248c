"""The SQL ferry installs on a source for change capture, and nothing else.

One schema (``ferry_capture`` by default) holding the change log, the list of captured
tables and one trigger function. The function logs *which keys* changed, never values:
apply re-reads the current row from the source, so the log stays small, carries no
re-encoded values, and applying an entry twice is harmless. A key update logs the old and
the new key; TRUNCATE is logged by a statement trigger. The function is SECURITY DEFINER
(owned by the installer) so every role's writes are logged without granting the log to
anyone.
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
    "row_trigger",
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


def create_schema(schema: str) -> sql.Composed:
    s = sql.Identifier(schema)
    return sql.SQL("""
CREATE SCHEMA {s};
CREATE TABLE {s}.log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    rel oid NOT NULL,
    op "char" NOT NULL,
    old_key jsonb,
    new_key jsonb,
    at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
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
CREATE FUNCTION {s}.log_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
DECLARE
    old_key jsonb;
    new_key jsonb;
    old_row jsonb;
    new_row jsonb;
    k text;
BEGIN
    -- The fence: once set, every role's writes to every table of ours are refused.
    IF EXISTS (SELECT FROM {s}.fence) THEN
        RAISE EXCEPTION 'writes are stopped: this database is moving (ferry fence on %)', TG_TABLE_NAME
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    IF TG_WHEN = 'BEFORE' THEN
        RETURN NULL;  -- a table without a key: fenced, not logged
    END IF;
    IF TG_LEVEL = 'STATEMENT' THEN
        INSERT INTO {s}.log (rel, op) VALUES (TG_RELID, 'T');
        RETURN NULL;
    END IF;
    -- Each row is turned into jsonb once; the key's fields are picked from it.
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
    IF TG_NARGS = 1 THEN
        k := TG_ARGV[0];
        IF old_row IS NOT NULL THEN old_key := jsonb_build_object(k, old_row -> k); END IF;
        IF new_row IS NOT NULL THEN new_key := jsonb_build_object(k, new_row -> k); END IF;
    ELSE
        IF old_row IS NOT NULL THEN
            SELECT jsonb_object_agg(a, old_row -> a) INTO old_key FROM unnest(TG_ARGV) AS a;
        END IF;
        IF new_row IS NOT NULL THEN
            SELECT jsonb_object_agg(a, new_row -> a) INTO new_key FROM unnest(TG_ARGV) AS a;
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' AND old_key = new_key THEN
        old_key := NULL;  -- the key stayed: one key to re-read
    END IF;
    INSERT INTO {s}.log (rel, op, old_key, new_key) VALUES (TG_RELID, left(TG_OP, 1), old_key, new_key);
    RETURN NULL;
END
$body$;
REVOKE ALL ON FUNCTION {s}.log_change() FROM PUBLIC;
COMMENT ON SCHEMA {s} IS {mark};
""").format(s=s, mark=sql.Literal(MARK))


def row_trigger(schema: str, table: str, key_columns: list[str]) -> sql.Composed:
    return sql.SQL(
        "CREATE TRIGGER {trigger} AFTER INSERT OR UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION {s}.log_change({args})"
    ).format(
        trigger=sql.Identifier(ROW_TRIGGER),
        table=sql.SQL(table),
        s=sql.Identifier(schema),
        args=sql.SQL(", ").join(sql.Literal(c) for c in key_columns),
    )


def truncate_trigger(schema: str, table: str) -> sql.Composed:
    return sql.SQL(
        "CREATE TRIGGER {trigger} AFTER TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {s}.log_change()"
    ).format(trigger=sql.Identifier(TRUNCATE_TRIGGER), table=sql.SQL(table), s=sql.Identifier(schema))


def fence_trigger(schema: str, table: str) -> sql.Composed:
    """On a table without a key: nothing is logged, but the fence stops its writes too."""
    return sql.SQL(
        "CREATE TRIGGER {trigger} BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION {s}.log_change()"
    ).format(trigger=sql.Identifier(FENCE_TRIGGER), table=sql.SQL(table), s=sql.Identifier(schema))
