-- Every feature issue #2 lists, in one source database.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE SCHEMA sales;
CREATE SCHEMA "Mixed Case";

CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
CREATE TYPE address AS (street text, city text, zip text);

CREATE TABLE customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    email text UNIQUE,
    mood mood NOT NULL DEFAULT 'ok',
    visits positive_int,
    home address,
    name_upper text GENERATED ALWAYS AS (upper(name)) STORED,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO customers (name, email, mood, visits, home)
SELECT 'customer ' || g, 'c' || g || '@example.com', (ARRAY['sad','ok','happy'])[1 + g % 3]::mood, 1 + g % 50,
       ROW(g || ' Main St', 'Town ' || (g % 7), lpad((g % 99999)::text, 5, '0'))::address
  FROM generate_series(1, 3000) g;

CREATE TABLE sales.orders (
    id serial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    amount numeric(12, 2) NOT NULL,
    note text,
    payload jsonb
);
CREATE INDEX orders_customer_idx ON sales.orders (customer_id);
CREATE INDEX orders_payload_idx ON sales.orders USING gin (payload);
INSERT INTO sales.orders (customer_id, amount, note, payload)
SELECT 1 + g % 3000, (g % 1000) / 7.0, CASE WHEN g % 5 = 0 THEN NULL ELSE 'note ' || g END,
       jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b', g % 10))
  FROM generate_series(1, 20000) g;

-- TOASTed values: large, poorly compressible text.
CREATE TABLE blobs (id int PRIMARY KEY, body text, raw bytea);
INSERT INTO blobs SELECT g, (SELECT string_agg(md5(g::text || i::text), '') FROM generate_series(1, 400) i),
       decode(repeat(md5(g::text), 100), 'hex') FROM generate_series(1, 30) g;

-- No primary key, with duplicate rows that must all arrive.
CREATE TABLE events_nopk (kind text, at timestamptz, n int);
INSERT INTO events_nopk SELECT 'dup', '2024-01-01', 1 FROM generate_series(1, 5);
INSERT INTO events_nopk SELECT 'k' || (g % 3), '2024-01-01'::timestamptz + g * interval '1 minute', g FROM generate_series(1, 1000) g;

-- Unlogged table and its data.
CREATE UNLOGGED TABLE cache_entries (k text PRIMARY KEY, v text);
INSERT INTO cache_entries SELECT 'key' || g, 'value' || g FROM generate_series(1, 500) g;

-- Partitioned table with a partitioned primary key and index.
CREATE TABLE measurements (id int NOT NULL, taken date NOT NULL, value double precision, PRIMARY KEY (id, taken))
    PARTITION BY RANGE (taken);
CREATE TABLE measurements_2023 PARTITION OF measurements FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE INDEX measurements_value_idx ON measurements (value);
INSERT INTO measurements SELECT g, '2023-01-01'::date + (g % 700), g * 1.5 FROM generate_series(1, 4000) g;

-- Deferrable foreign-key cycle.
CREATE TABLE chicken (id int PRIMARY KEY, egg_id int);
CREATE TABLE egg (id int PRIMARY KEY, chicken_id int REFERENCES chicken (id) DEFERRABLE INITIALLY DEFERRED);
ALTER TABLE chicken ADD CONSTRAINT chicken_egg_fk FOREIGN KEY (egg_id) REFERENCES egg (id) DEFERRABLE INITIALLY DEFERRED;
BEGIN;
INSERT INTO chicken SELECT g, g FROM generate_series(1, 100) g;
INSERT INTO egg SELECT g, g FROM generate_series(1, 100) g;
COMMIT;

-- Exclusion constraint.
CREATE TABLE bookings (id int PRIMARY KEY, room int NOT NULL, during tstzrange NOT NULL,
    EXCLUDE USING gist (room WITH =, during WITH &&));
INSERT INTO bookings SELECT g, g % 10, tstzrange('2024-01-01'::timestamptz + g * interval '1 day',
       '2024-01-01'::timestamptz + g * interval '1 day' + interval '2 hours') FROM generate_series(1, 200) g;

-- Row-level security, forced, with a policy.
CREATE TABLE secrets (id int PRIMARY KEY, owner_name text, secret text);
ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY owner_only ON secrets USING (owner_name = current_user);
INSERT INTO secrets SELECT g, 'someone', 's' || g FROM generate_series(1, 50) g;

-- Trigger that must not fire during the copy.
CREATE TABLE audit_log (id serial PRIMARY KEY, msg text);
CREATE FUNCTION log_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.audit_log (msg) VALUES ('order ' || NEW.id); RETURN NEW; END $$;
CREATE TRIGGER orders_audit AFTER INSERT ON sales.orders FOR EACH ROW EXECUTE FUNCTION log_order();
INSERT INTO audit_log (msg) VALUES ('before copy');

-- Mixed-case and quoted names.
CREATE TABLE "Mixed Case"."Order Items" ("Item ID" int PRIMARY KEY, "Qty" int, "select" text, "a, b" text);
CREATE INDEX "Idx Qty" ON "Mixed Case"."Order Items" ("Qty");
INSERT INTO "Mixed Case"."Order Items" SELECT g, g % 9, 'kw' || g, 'comma' || g FROM generate_series(1, 300) g;

-- Materialized views, one over another.
CREATE MATERIALIZED VIEW customer_totals AS
    SELECT customer_id, sum(amount) AS total, count(*) AS n FROM sales.orders GROUP BY customer_id;
CREATE UNIQUE INDEX customer_totals_pk ON customer_totals (customer_id);
CREATE MATERIALIZED VIEW top_customers AS SELECT * FROM customer_totals WHERE total > 2000;

-- A sequence used outside any table, advanced.
CREATE SEQUENCE invoice_numbers START 1000;
SELECT nextval('invoice_numbers') FROM generate_series(1, 42);

-- Large objects.
SELECT lo_from_bytea(0, convert_to(repeat('large object ' || g, 1000 * g), 'UTF8')) FROM generate_series(1, 3) g;

-- Special values.
CREATE TABLE odd_values (id int PRIMARY KEY, t text, f float8, arr int[], ts timestamptz, b boolean, j json);
INSERT INTO odd_values VALUES
    (1, E'tab\there\nnewline\\backslash', 'NaN', '{1,NULL,3}', 'infinity', NULL, '{"a": [1, 2]}'),
    (2, '', '-Infinity', '{}', '-infinity', true, 'null'),
    (3, NULL, 1e-300, NULL, '2024-02-29 12:00:00+00', false, '[]'),
    (4, 'ünïcödé ✓ 日本', 0, '{-2147483648}', NULL, NULL, NULL);

-- A table with no columns, old-style inheritance, replica identity and CLUSTER ON an index.
CREATE TABLE no_columns ();
INSERT INTO no_columns DEFAULT VALUES;
INSERT INTO no_columns DEFAULT VALUES;
CREATE TABLE vehicles (id int PRIMARY KEY, name text);
CREATE TABLE trucks (payload int) INHERITS (vehicles);
INSERT INTO vehicles VALUES (1, 'car');
INSERT INTO trucks VALUES (2, 'truck', 40);
CREATE UNIQUE INDEX vehicles_name_key ON vehicles (name);
ALTER TABLE vehicles ALTER COLUMN name SET NOT NULL;
ALTER TABLE vehicles REPLICA IDENTITY USING INDEX vehicles_name_key;
ALTER TABLE vehicles CLUSTER ON vehicles_pkey;
