"""``ferry redis copy|verify|preflight``."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from migration.cli.common import (
    finish_preflight,
    finish_verify,
    handle_errors,
    json_option,
    parse_size,
    print_json,
    progress_display,
)
from migration.redis import RedisCopyOptions, copy_redis, preflight_redis, verify_redis

_source = click.option(
    "--source",
    "source_url",
    envvar="FERRY_REDIS_SOURCE_URL",
    required=True,
    metavar="URL",
    help="Source Redis URL, redis:// or rediss:// (or FERRY_REDIS_SOURCE_URL).",
)
_target = click.option(
    "--target",
    "target_url",
    envvar="FERRY_REDIS_TARGET_URL",
    required=True,
    metavar="URL",
    help="Target Redis URL (or FERRY_REDIS_TARGET_URL).",
)
_tls = click.option(
    "--tls-skip-verify", is_flag=True, help="Accept any TLS certificate (Heroku Redis presents self-signed ones)."
)


@click.group()
def redis() -> None:
    """Redis: copy (scan, live tail or replicaof), verify and check before copying."""


@redis.command()
@_source
@_target
@click.option(
    "--jobs", "-j", default=8, show_default=True, type=click.IntRange(1, 64), help="Parallel connection pairs."
)
@click.option("--batch", default=1000, show_default=True, type=click.IntRange(1, 100_000), help="Keys per pipeline.")
@click.option("--live", is_flag=True, help="After the scan, follow changes until interrupted (Ctrl-C).")
@click.option("--live-seconds", type=click.FloatRange(0), help="With --live: stop after this many seconds (and drain).")
@click.option("--replicaof", is_flag=True, help="Let the target replicate the source; promote it when stopped.")
@click.option("--flush-target", is_flag=True, help="Empty the target first.")
@click.option("--merge", is_flag=True, help="Copy into a non-empty target, replacing same-named keys.")
@click.option(
    "--max-restore-bytes", default="256MB", show_default=True, help="Bigger values are copied element by element."
)
@click.option("--status-file", type=click.Path(path_type=Path), help="With --live: lag written here as JSON.")
@_tls
@json_option
@handle_errors
def copy(
    source_url: str, target_url: str, jobs: int, batch: int, live: bool, live_seconds: float | None,
    replicaof: bool, flush_target: bool, merge: bool, max_restore_bytes: str, status_file: Path | None,
    tls_skip_verify: bool, as_json: bool,
) -> None:  # fmt: skip
    """Copy every database: pipelined DUMP/RESTORE keeping TTLs, optionally following live writes."""
    if flush_target and merge:
        raise click.UsageError("--flush-target and --merge cannot be used together")
    options = RedisCopyOptions(
        source_url=source_url, target_url=target_url, jobs=jobs, batch=batch, live=live or live_seconds is not None,
        live_seconds=live_seconds, replicaof=replicaof, merge=merge, flush_target=flush_target,
        tls_skip_verify=tls_skip_verify, max_restore_bytes=parse_size(max_restore_bytes), status_file=status_file,
    )  # fmt: skip
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = (
        {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        if options.live or replicaof
        else {}
    )
    try:
        with progress_display(unit="keys") as progress:
            result = copy_redis(options, progress, stop.is_set)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if as_json:
        print_json(result.to_json())
    else:
        click.echo(
            f"copied {result.keys.copied} keys from {len(result.databases)} databases in {result.seconds:.1f} s"
            + (f"; live: {result.live_copied} re-copied, {result.live_deleted} deleted" if options.live else "")
        )
    sys.exit(0)


@redis.command()
@_source
@_target
@click.option("--sample", type=click.IntRange(1), help="Check this many random keys per database instead of all.")
@click.option(
    "--ttl-tolerance", default=5.0, show_default=True, type=click.FloatRange(0), help="Seconds TTLs may differ by."
)
@_tls
@json_option
@handle_errors
def verify(
    source_url: str, target_url: str, sample: int | None, ttl_tolerance: float, tls_skip_verify: bool, as_json: bool
) -> None:
    """Compare keys, types, TTLs and values: exit 0 when identical, 1 when they differ."""
    report = verify_redis(
        source_url, target_url, sample=sample, ttl_tolerance_ms=int(ttl_tolerance * 1000),
        tls_skip_verify=tls_skip_verify,
    )  # fmt: skip
    finish_verify(report, as_json)


@redis.command()
@_source
@_target
@_tls
@json_option
@handle_errors
def preflight(source_url: str, target_url: str, tls_skip_verify: bool, as_json: bool) -> None:
    """Check both servers before a copy: exit 0 when it would work, 1 when it would fail."""
    finish_preflight(preflight_redis(source_url, target_url, tls_skip_verify=tls_skip_verify), as_json)
