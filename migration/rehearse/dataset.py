"""A realistic small shop to move: PostgreSQL tables, Redis sessions and carts, S3 uploads."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import parse_url
from migration.redis.connection import RespConn, encode

__all__ = ["APP_TABLE", "fill_buckets", "fill_postgres", "fill_redis"]

#: Where the rehearsal's app records each write it was told succeeded.
APP_TABLE = "app_writes"

_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TYPE order_status AS ENUM ('cart', 'paid', 'shipped', 'returned');
CREATE TABLE customers (
    id bigserial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    profile jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE products (
    id serial PRIMARY KEY,
    sku text NOT NULL UNIQUE,
    title text NOT NULL,
    price_cents integer NOT NULL CHECK (price_cents > 0),
    tags text[] NOT NULL DEFAULT '{}'
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    status order_status NOT NULL,
    placed_at timestamptz NOT NULL,
    total_cents bigint NOT NULL
);
CREATE INDEX orders_customer_placed ON orders (customer_id, placed_at DESC);
CREATE TABLE order_items (
    order_id bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    product_id integer NOT NULL REFERENCES products (id),
    quantity integer NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE INDEX customers_profile ON customers USING gin (profile);
CREATE VIEW revenue_by_day AS
    SELECT date_trunc('day', placed_at) AS day, sum(total_cents) AS cents FROM orders WHERE status <> 'cart' GROUP BY 1;
CREATE TABLE app_writes (
    id bigint PRIMARY KEY,
    kind text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
"""

_FILL = """
INSERT INTO products (sku, title, price_cents, tags)
    SELECT 'SKU-' || g, 'Product ' || g, 100 + (g * 37) % 9900, ARRAY['tag' || g % 7, 'tag' || g % 11]
    FROM generate_series(1, 500) g;
INSERT INTO customers (email, name, created_at, profile)
    SELECT 'customer' || g || '@example.com', 'Customer ' || g, now() - (g % 900) * interval '1 day',
           jsonb_build_object('plan', CASE WHEN g % 10 = 0 THEN 'pro' ELSE 'free' END, 'visits', g % 97)
    FROM generate_series(1, {customers}) g;
INSERT INTO orders (customer_id, status, placed_at, total_cents)
    SELECT 1 + (g::bigint * 7919) % {customers}, (ARRAY['cart','paid','shipped','returned'])[1 + g % 4]::order_status,
           now() - (g % 720) * interval '1 hour', 500 + (g * 31) % 50000
    FROM generate_series(1, {orders}) g;
INSERT INTO order_items (order_id, product_id, quantity)
    SELECT o, 1 + (o * p) % 500, 1 + (o + p) % 5 FROM generate_series(1, {orders}) o, generate_series(1, 3) p
    ON CONFLICT DO NOTHING;
ANALYZE;
"""


def fill_postgres(url: str, customers: int) -> int:
    """Create the shop's schema and rows; returns the number of rows written."""
    endpoint = parse_url(url, "source")
    with connect(endpoint, autocommit=True) as conn, pg_errors("source", endpoint):
        conn.execute(_SCHEMA)
        conn.execute(sql.SQL(_FILL).format(customers=sql.Literal(customers), orders=sql.Literal(customers * 3)))
        # As a long-lived database would be: vacuumed, so no autovacuum of freshly loaded tables holds
        # their locks when capture is installed (a real source's tables were loaded long ago).
        conn.execute("VACUUM")
        row = conn.execute(
            "SELECT (SELECT count(*) FROM customers) + (SELECT count(*) FROM orders) + (SELECT count(*) FROM order_items)"
        ).fetchone()
    return int(row[0]) if row else 0


def fill_redis(conn: RespConn, sessions: int) -> int:
    """Sessions with TTLs, carts as hashes, a leaderboard and a job queue; returns keys written."""
    commands: list[tuple[Any, ...]] = []
    for n in range(sessions):
        commands.append(("SET", f"session:{n}", f"user-{n}", "EX", str(3600 + n % 600)))
        if n % 3 == 0:
            commands.append(("HSET", f"cart:{n}", "sku", f"SKU-{n % 500}", "qty", str(1 + n % 4)))
        commands.append(("ZADD", "leaderboard", str(n % 1000), f"customer:{n}"))
    commands += [("RPUSH", "queue:mail", f"job-{n}") for n in range(100)]
    for start in range(0, len(commands), 1000):
        conn.pipeline([encode(*command) for command in commands[start : start + 1000]])
    return sessions + sessions // 3 + 2


def fill_buckets(client: Any, bucket: str, objects: int) -> int:
    """Uploads with content types, cache headers and user metadata; returns objects written."""
    for n in range(objects):
        client.put_object(
            Bucket=bucket,
            Key=f"uploads/{n % 10}/avatar {n}.png" if n % 5 else f"exports/report-{n}.csv",
            Body=(b"\x89PNG" + bytes([n % 256]) * (512 + n * 13 % 4096)),
            ContentType="image/png" if n % 5 else "text/csv",
            CacheControl="max-age=86400",
            Metadata={"uploaded-by": f"customer-{n}"},
        )
    return objects
