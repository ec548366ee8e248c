"""``ferry s3 sync|verify``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from migration.cli.common import finish_verify, handle_errors, json_option, parse_size, print_json, progress_display
from migration.errors import Side
from migration.s3 import S3Side, SyncOptions, sync_buckets, verify_buckets

_CANNED_ACLS = (
    "private", "public-read", "public-read-write", "authenticated-read", "aws-exec-read", "bucket-owner-read",
    "bucket-owner-full-control",
)  # fmt: skip
_STORAGE_CLASSES = (
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER", "DEEP_ARCHIVE",
    "GLACIER_IR", "EXPRESS_ONEZONE",
)  # fmt: skip


def _side_options(side: Side) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    env = f"FERRY_S3_{side.upper()}_"

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option(f"--{side}-profile", envvar=env + "PROFILE", help=f"AWS profile for the {side}.")(fn)
        fn = click.option(f"--{side}-region", envvar=env + "REGION", help=f"Region of the {side} bucket.")(fn)
        fn = click.option(f"--{side}-endpoint-url", envvar=env + "ENDPOINT_URL",
                          help=f"S3 endpoint for the {side} (S3-compatible stores, tests).")(fn)  # fmt: skip
        return fn

    return decorate


def _sides(kwargs: dict[str, Any]) -> tuple[S3Side, S3Side]:
    def side(name: Side) -> S3Side:
        return S3Side.from_env(
            name, kwargs.pop(f"{name}_profile"), kwargs.pop(f"{name}_region"), kwargs.pop(f"{name}_endpoint_url")
        )

    return side("source"), side("target")


@click.group()
def s3() -> None:
    """S3: sync buckets (each side with its own credentials) and verify them.

    Access keys come only from the environment: FERRY_S3_SOURCE_ACCESS_KEY_ID,
    FERRY_S3_SOURCE_SECRET_ACCESS_KEY, FERRY_S3_SOURCE_SESSION_TOKEN and the same with
    TARGET; otherwise the profile or the default AWS credential chain is used.
    """


@s3.command()
@click.argument("source_url", metavar="s3://SRC[/PREFIX]")
@click.argument("target_url", metavar="s3://DST[/PREFIX]")
@_side_options("source")
@_side_options("target")
@click.option("--jobs", "-j", default=16, show_default=True, type=click.IntRange(1, 256), help="Parallel transfers.")
@click.option("--delete", is_flag=True, help="Remove target objects the source does not have.")
@click.option("--dry-run", is_flag=True, help="List what would be copied and deleted; change nothing.")
@click.option(
    "--server-side/--no-server-side",
    default=None,
    help="Force or forbid CopyObject [default: when both sides share credentials and endpoint].",
)
@click.option("--acl", type=click.Choice(_CANNED_ACLS), help="Canned ACL for the target objects.")
@click.option("--storage-class", type=click.Choice(_STORAGE_CLASSES), help="Storage class for the target objects.")
@click.option(
    "--multipart-threshold",
    default="64MB",
    show_default=True,
    help="Objects bigger than this move in parts (a multipart source keeps its own parts).",
)
@json_option
@handle_errors
def sync(source_url: str, target_url: str, jobs: int, delete: bool, dry_run: bool, server_side: bool | None,
         acl: str | None, storage_class: str | None, multipart_threshold: str, as_json: bool,
         **kwargs: Any) -> None:  # fmt: skip
    """Copy what differs (by size and checksum) with metadata and tags; resumable."""
    source, target = _sides(kwargs)
    options = SyncOptions(source_url, target_url, source, target, jobs=jobs, delete=delete, dry_run=dry_run,
                          server_side=server_side, acl=acl, storage_class=storage_class,
                          multipart_threshold=max(5 << 20, parse_size(multipart_threshold)))  # fmt: skip
    with progress_display(unit="objects") as progress:
        result = sync_buckets(options, progress)
    if as_json:
        print_json(result.to_json())
    elif dry_run:
        for item in result.planned:
            click.echo(f"would {item['action']}: {item['key']}")
    else:
        click.echo(f"copied {result.copied} objects ({result.copied_bytes} bytes), deleted {result.deleted} "
                   f"in {result.seconds:.1f} s" + (" (server-side)" if result.server_side else ""))  # fmt: skip


@s3.command()
@click.argument("source_url", metavar="s3://SRC[/PREFIX]")
@click.argument("target_url", metavar="s3://DST[/PREFIX]")
@_side_options("source")
@_side_options("target")
@json_option
@handle_errors
def verify(source_url: str, target_url: str, as_json: bool, **kwargs: Any) -> None:
    """Compare both listings (count, sizes, checksums): exit 0 when identical, 1 when not."""
    source, target = _sides(kwargs)
    finish_verify(verify_buckets(source_url, target_url, source=source, target=target), as_json)
