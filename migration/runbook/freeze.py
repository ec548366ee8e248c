"""Phases ``freeze`` and ``unfreeze``: stop the app's writes to the old stores, then let them go on.

``maintenance`` (the default): maintenance mode on, and every process type other than web scaled
to 0, because maintenance mode stops neither workers nor scheduler jobs; the counts are kept in
the run's state and restored on unfreeze. ``read-only``: every moved store stops taking writes
while reads go on: the app's database role defaults to read-only transactions and its open
sessions are ended; the source Redis holds writes (``CLIENT PAUSE WRITE``); S3 has no such
switch, so the stack config refuses ``read-only`` when S3 moves.

After the switch the app writes to the targets: a read-only freeze then leaves the old stores
closed (a dyno still on the old URLs must not write where nobody reads any more), and only
``ferry rollback`` opens them again.
"""

from __future__ import annotations

import time

from psycopg import sql

from migration.postgres.connection import connect, pg_errors
from migration.postgres.conninfo import parse_url
from migration.redis.freeze import pause_writes, resume_writes
from migration.runbook.context import RunContext

__all__ = ["freeze", "unfreeze"]


def freeze(ctx: RunContext) -> str:
    mode = ctx.config.migration.freeze
    if mode == "read-only":
        ctx.state.freeze_mode = mode
        ctx.save()
        _set_read_only(ctx, True)
        detail = "app's database role set read-only; its sessions ended"
        redis_url = ctx.sources().redis_url if ctx.moves_redis else None
        if redis_url:
            pause_writes(redis_url)
            detail += "; source Redis writes paused"
    else:
        if not ctx.state.formation:
            ctx.state.formation = ctx.platform.formation()
        ctx.state.freeze_mode = mode
        ctx.save()
        ctx.platform.set_maintenance(True)
        stopped = {kind: 0 for kind, count in ctx.state.formation.items() if kind != "web" and count > 0}
        ctx.platform.scale(stopped)
        time.sleep(ctx.config.migration.drain_seconds)
        detail = (
            f"maintenance on; scaled to 0: {', '.join(sorted(stopped)) or 'nothing'}; "
            f"drained {ctx.config.migration.drain_seconds:g} s"
        )
    ctx.state.freeze_mode, ctx.state.frozen = mode, True
    ctx.save()
    return detail


def unfreeze(ctx: RunContext, *, rolling_back: bool = False) -> str:
    """Let writes go on: to the targets after the switch, to the old stores before it or on rollback."""
    if not ctx.state.frozen:
        return "not frozen"
    if ctx.state.freeze_mode == "read-only":
        if ctx.state.done("switch") and not rolling_back:
            return "the app writes to the targets now; the old stores stay read-only (ferry rollback reopens them)"
        _set_read_only(ctx, False)
        detail = "app's database role read-write again"
        redis_url = ctx.sources().redis_url if ctx.moves_redis else None
        if redis_url:
            resume_writes(redis_url)
            detail += "; source Redis writes resumed"
    else:
        restore = {kind: count for kind, count in ctx.state.formation.items() if kind != "web" and count > 0}
        ctx.platform.scale(restore)
        ctx.platform.set_maintenance(False)
        detail = (
            f"maintenance off; scaled back: {', '.join(f'{k}={v}' for k, v in sorted(restore.items())) or 'nothing'}"
        )
    ctx.state.frozen = False
    ctx.save()
    return detail


def _set_read_only(ctx: RunContext, on: bool) -> None:
    endpoint = parse_url(ctx.sources().database_url, "source")
    with connect(endpoint, autocommit=True) as conn, pg_errors("source", endpoint):
        database = sql.Identifier(endpoint.dbname)
        if on:
            # Scoped to this database: the role may reach others that must stay writable.
            conn.execute(
                sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} SET default_transaction_read_only = on").format(
                    database
                )
            )
            # Sessions opened before keep writing until they reconnect: end them.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = current_user AND datname = current_database() AND pid <> pg_backend_pid()"
            )
        else:
            # This session started read-only too, by the very setting it is about to remove.
            conn.execute("SET default_transaction_read_only = off")
            conn.execute(
                sql.SQL("ALTER ROLE CURRENT_USER IN DATABASE {} RESET default_transaction_read_only").format(database)
            )
