"""The databases a run works in: two clusters, and for each seed (or attack) a fresh source owned
by an app role, as on Heroku, and a target."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql


@contextlib.contextmanager
def seed_databases(
    source_admin: str, target_admin: str, seed: int, target_role: str
) -> Iterator[tuple[str, str, str, str]]:
    """A source database owned by an app role (as on Heroku) and a target one; yields
    (source app URL, target URL for ferry, source admin URL, target admin URL)."""
    tag = f"{seed}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    app, app_pw = f"chaos_app_{tag}", "app-pw-" + tag
    tgt, tgt_pw = f"chaos_tgt_{tag}", "tgt-pw-" + tag
    sdb, tdb = f"chaos_src_{tag}", f"chaos_dst_{tag}"
    with psycopg.connect(source_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(app), sql.Literal(app_pw)))
        # As Heroku's default credential: it may end other ordinary sessions (the fence needs that).
        conn.execute(sql.SQL("GRANT pg_signal_backend TO {}").format(sql.Identifier(app)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(sdb), sql.Identifier(app)))
    with psycopg.connect(target_admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(tdb)))
        if target_role == "owner":
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(tgt), sql.Literal(tgt_pw)))
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(tdb), sql.Identifier(tgt)))
    src_info = psycopg.conninfo.conninfo_to_dict(source_admin)
    dst_info = psycopg.conninfo.conninfo_to_dict(target_admin)

    def url(info: dict[str, Any], user: str, pw: str, db: str) -> str:
        return f"postgresql://{user}:{pw}@{info['host']}:{info['port']}/{db}"

    source_app = url(src_info, app, app_pw, sdb)
    source_su = url(src_info, str(src_info["user"]), str(src_info["password"]), sdb)
    target_su = url(dst_info, str(dst_info["user"]), str(dst_info["password"]), tdb)
    target_ferry = url(dst_info, tgt, tgt_pw, tdb) if target_role == "owner" else target_su
    try:
        yield source_app, target_ferry, source_su, target_su
    finally:
        for admin, db, role in ((source_admin, sdb, app), (target_admin, tdb, tgt if target_role == "owner" else None)):
            with contextlib.suppress(psycopg.Error), psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
                if role:
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@contextlib.contextmanager
def clusters(bindir: Path | None, settings: dict[str, str] | None = None) -> Iterator[tuple[str, str]]:
    from migration.rehearse.pgcluster import running_cluster

    conf = {"max_connections": "100", "max_prepared_transactions": "10", **(settings or {})}
    with running_cluster(conf, bindir=bindir) as source, running_cluster(conf, bindir=bindir) as target:
        yield source.url(), target.url()
