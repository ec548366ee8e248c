"""``ferry pg copy|verify|preflight``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import click
from click.core import ParameterSource

from migration.cli.common import (
    finish_preflight,
    finish_verify,
    handle_errors,
    json_option,
    parse_size,
    print_json,
    progress_display,
)
from migration.postgres import (
    CaptureSettings,
    CopyOptions,
    DumpFilters,
    FollowOptions,
    FollowResult,
    await_validation,
    capture_errors,
    capture_status,
    connect_target,
    copy_database,
    ensure_capture,
    follow_changes,
    install_capture,
    preflight_database,
    remove_capture,
    restore_constraints,
    validate_constraints,
    verify_databases,
)
from migration.postgres import dump as pg_dump_archive
from migration.worker import stop_on_signals

_source = click.option(
    "--source",
    "source_url",
    envvar="FERRY_SOURCE_URL",
    required=True,
    metavar="URL",
    help="Source database URL (or FERRY_SOURCE_URL).",
)
# copy and verify take --from-dump instead (an archive as the source).
_source_or_dump = click.option(
    "--source",
    "source_url",
    envvar="FERRY_SOURCE_URL",
    metavar="URL",
    help="Source database URL (or FERRY_SOURCE_URL); or --from-dump.",
)
_from_dump = click.option(
    "--from-dump",
    "dump",
    metavar="FILE|URL",
    help="A pg_dump -Fc archive (a PG Backups download, or its https:// URL) as the source, instead of --source.",
)
_download_dir = click.option(
    "--download-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With a --from-dump URL: where it is downloaded (resumably) [default: .ferry/dumps].",
)
_target = click.option(
    "--target",
    "target_url",
    envvar="FERRY_TARGET_URL",
    required=True,
    metavar="URL",
    help="Target database URL (or FERRY_TARGET_URL).",
)


@click.group()
def pg() -> None:
    """PostgreSQL: copy, verify and check before copying."""


@pg.command()
@_source_or_dump
@_from_dump
@_download_dir
@_target
@click.option("--jobs", "-j", default=4, show_default=True, type=click.IntRange(1, 64), help="Parallel COPY streams.")
@click.option("--index-jobs", type=click.IntRange(1, 64), help="Parallel index builds [default: --jobs].")
@click.option("--schema", "-n", multiple=True, help="Copy only schemas matching (pg_dump pattern).")
@click.option("--exclude-schema", "-N", multiple=True, help="Skip schemas matching.")
@click.option("--table", "-t", multiple=True, help="Copy only tables matching.")
@click.option("--exclude-table", "-T", multiple=True, help="Skip tables matching.")
@click.option("--owner", metavar="ROLE", help="Give every object on the target to ROLE.")
@click.option("--clean", is_flag=True, help="Drop everything in the target database first.")
@click.option("--resume", is_flag=True, help="Finish an interrupted copy into the same target.")
@click.option("--create-database", is_flag=True, help="Create the target database when it does not exist.")
@click.option(
    "--split-tables-larger-than",
    "split",
    default="auto",
    show_default=True,
    help="Copy bigger tables in ranges across workers (0 never; auto: only a table well over its fair share).",
)
@click.option("--maintenance-work-mem", metavar="SIZE", help="For index builds on the target [default: the server's].")
@click.option(
    "--follow", is_flag=True, help="Capture changes (installed first when missing) and apply them after the copy."
)
@click.option("--follow-seconds", type=click.FloatRange(0), help="With --follow: stop following after this long.")
@click.option("--status-file", type=click.Path(path_type=Path), help="With --follow: the lag, as JSON, every second.")
@click.option("--verify", "verify_after", is_flag=True, help="With --from-dump: verify against the archive after.")
@json_option
@handle_errors
def copy(
    source_url: str | None,
    dump: str | None,
    download_dir: Path | None,
    target_url: str,
    jobs: int,
    index_jobs: int | None,
    schema: tuple[str, ...],
    exclude_schema: tuple[str, ...],
    table: tuple[str, ...],
    exclude_table: tuple[str, ...],
    owner: str | None,
    clean: bool,
    resume: bool,
    create_database: bool,
    split: str,
    maintenance_work_mem: str | None,
    follow: bool,
    follow_seconds: float | None,
    status_file: Path | None,
    verify_after: bool,
    as_json: bool,
) -> None:
    """Copy a database: consistent snapshot, parallel streaming COPY, indexes as tables finish.

    With --from-dump, restore a pg_dump -Fc archive the same way (resumable, verified against it)."""
    if clean and resume:
        raise click.UsageError("--clean and --resume cannot be used together")
    source_url = _source_url(source_url)
    if dump is not None:
        given = [name for name, value in (("-n", schema), ("-N", exclude_schema), ("-t", table),
                 ("-T", exclude_table), ("--follow", follow or follow_seconds is not None),
                 ("--status-file", status_file), ("--split-tables-larger-than", split != "auto")) if value]  # fmt: skip
        if given:
            raise click.UsageError(f"--from-dump restores the whole archive as it is: leave out {', '.join(given)}")
        dump_options = pg_dump_archive.DumpCopyOptions(
            dump, target_url, jobs=jobs, index_jobs=index_jobs, owner=owner, clean=clean, resume=resume,
            create_database=create_database, maintenance_work_mem=maintenance_work_mem, download_dir=download_dir,
        )  # fmt: skip
        _copy_from_dump(dump_options, verify_after, as_json)
        return
    if verify_after:
        raise click.UsageError("--verify goes with --from-dump (ferry pg verify checks a copy from --source)")
    options = CopyOptions(
        source_url=source_url,
        target_url=target_url,
        jobs=jobs,
        index_jobs=index_jobs,
        filters=DumpFilters(schema, exclude_schema, table, exclude_table),
        owner=owner,
        clean=clean,
        resume=resume,
        create_database=create_database,
        split_bytes=None if split == "auto" else parse_size(split),
        maintenance_work_mem=maintenance_work_mem,
    )
    follow = follow or follow_seconds is not None
    if follow and (schema or exclude_schema or table or exclude_table):
        # Capture logs every table's changes; the follow would apply them to tables the copy left out.
        raise click.UsageError("--follow copies and follows the whole database: leave out -n/-N/-t/-T")
    if follow:
        # Before the snapshot is exported: every change after it is then in the log (an install that
        # was interrupted is finished, tables created since get their triggers).
        ensure_capture(source_url)
    with progress_display() as progress:
        result = copy_database(options, progress)
    if follow and result.not_valid_foreign_keys:
        with connect_target(target_url) as target, capture_errors():
            await_validation(target, result.not_valid_foreign_keys)  # validated once the follow ends
    if follow:
        followed = _follow(FollowOptions(source_url, target_url, status_file=status_file, seconds=follow_seconds))
    if as_json:
        print_json({**result.to_json(), **({"follow": followed.to_json()} if follow else {})})
    else:
        click.echo(
            f"copied {len(result.tables)} tables, {result.rows} rows, {result.large_objects} large objects "
            f"in {result.seconds:.1f} s (snapshot {result.snapshot.snapshot_id})"
        )


def _source_url(source_url: str | None) -> str:
    """--source is needed without --from-dump, and refused beside it (FERRY_SOURCE_URL is not)."""
    context = click.get_current_context()
    dump = context.params.get("dump")
    if dump is not None:
        if source_url is not None and context.get_parameter_source("source_url") == ParameterSource.COMMANDLINE:
            raise click.UsageError("--source and --from-dump name two sources: give one")
        return ""
    if not source_url:
        raise click.UsageError("Missing option '--source' (or FERRY_SOURCE_URL, or --from-dump)")
    return source_url


def _copy_from_dump(options: pg_dump_archive.DumpCopyOptions, verify_after: bool, as_json: bool) -> None:
    with progress_display() as progress:
        result = pg_dump_archive.copy_from_dump(options, progress)
    report = None
    if verify_after:
        report = pg_dump_archive.verify_dump(str(result.archive.path), options.target_url, jobs=options.jobs)
    if as_json:
        print_json({**result.to_json(), **({"verify": report.to_json()} if report is not None else {})})
        if report is not None and not report.identical:
            sys.exit(1)
        return
    click.echo(
        f"restored {len(result.to_json()['tables'])} tables, {result.rows} rows, {result.large_objects} large "
        f"objects from {result.archive.display} in {result.seconds:.1f} s"
    )
    if report is not None:
        finish_verify(report, False)


@pg.command()
@_source_or_dump
@_from_dump
@_download_dir
@_target
@click.option(
    "--mode",
    type=click.Choice(["quick", "full"]),
    default="full",
    show_default=True,
    help="quick: catalogs, row counts, sequences; full: also per-range checksums.",
)
@click.option(
    "--jobs", "-j", default=4, show_default=True, type=click.IntRange(1, 64), help="Tables checked in parallel."
)
@json_option
@handle_errors
def verify(
    source_url: str | None, dump: str | None, download_dir: Path | None, target_url: str,
    mode: Literal["quick", "full"], jobs: int, as_json: bool,
) -> None:  # fmt: skip
    """Compare source and target: exit 0 when identical, 1 when they differ.

    With --from-dump: the target against the archive (its objects, sequences, large objects, row counts)."""
    source_url = _source_url(source_url)
    if dump is not None:
        if click.get_current_context().get_parameter_source("mode") == ParameterSource.COMMANDLINE:
            raise click.UsageError("--mode compares two databases; --from-dump checks the target against the archive")
        with progress_display() as progress:
            report = pg_dump_archive.verify_dump(dump, target_url, jobs=jobs, progress=progress,
                                                 download_dir=download_dir)  # fmt: skip
        finish_verify(report, as_json)
    finish_verify(verify_databases(source_url, target_url, mode=mode, jobs=jobs), as_json)


@pg.command()
@_source
@_target
@click.option("--jobs", "-j", default=4, show_default=True, type=click.IntRange(1, 64), help="Jobs the copy will use.")
@click.option("--owner", metavar="ROLE", help="Role the copy will give objects to.")
@json_option
@handle_errors
def preflight(source_url: str, target_url: str, jobs: int, owner: str | None, as_json: bool) -> None:
    """Check both sides before a copy: exit 0 when it would work, 1 when it would fail."""
    finish_preflight(preflight_database(source_url, target_url, jobs=jobs, owner=owner), as_json)


@pg.group()
def capture() -> None:
    """Change capture on the source: triggers that log which keys change (install, status, remove)."""


_capture_schema = click.option(
    "--capture-schema", default=CaptureSettings().schema, show_default=True, help="The schema of ours on the source."
)


@capture.command("install")
@_source
@_capture_schema
@click.option("--dry-run", is_flag=True, help="List what would be installed; change nothing.")
@click.option("--lock-timeout", default=500, show_default=True, type=click.IntRange(10, 60_000), help="ms per try.")
@json_option
@handle_errors
def capture_install(source_url: str, capture_schema: str, dry_run: bool, lock_timeout: int, as_json: bool) -> None:
    """Install capture triggers on every table with a key (tables without one are listed)."""
    settings = CaptureSettings(schema=capture_schema, lock_timeout_ms=lock_timeout)
    result = install_capture(source_url, settings, dry_run=dry_run)
    if as_json:
        print_json(result.to_json())
        return
    verb = "would capture" if dry_run else "captured"
    again = " (finishing an install that was interrupted)" if result.resumed else ""
    click.echo(f"{verb} {len(result.captured)} tables in schema {result.schema}{again}")
    for table in result.captured if dry_run else []:
        click.echo(f"  {table.name} (key: {', '.join(table.key)})")
    for table in result.not_capturable:
        click.echo(f"not capturable (no primary key or non-null unique key): {table.name}, {table.bytes} bytes")
    for name in result.not_always:
        click.echo(
            f"warning: {name}: not owned by this role, so session_replication_role = replica writes pass capture"
        )


@capture.command("status")
@_source
@_capture_schema
@json_option
@handle_errors
def capture_status_command(source_url: str, capture_schema: str, as_json: bool) -> None:
    """What is captured, what is not, and the log's size."""
    status = capture_status(source_url, CaptureSettings(schema=capture_schema))
    if as_json:
        print_json(status.to_json())
        return
    if not status.installed:
        click.echo(f"change capture is not installed (schema {status.schema})")
        return
    click.echo(
        f"{len(status.captured)} tables captured, {len(status.uncaptured)} not; log: {status.log_entries} entries, "
        f"{status.log_bytes} bytes"
        + (f", oldest {status.oldest_seconds:.1f} s" if status.oldest_seconds is not None else "")
        + ("; the FENCE IS UP: every write is refused (ferry rollback, or the run, lowers it)" if status.fenced else "")
    )
    for name in status.uncaptured:
        click.echo(f"  not captured: {name}")
    for problem in status.problems:
        click.echo(f"  problem: {problem}")


@capture.command("remove")
@_source
@_capture_schema
@click.option("--lock-timeout", default=500, show_default=True, type=click.IntRange(10, 60_000), help="ms per try.")
@handle_errors
def capture_remove(source_url: str, capture_schema: str, lock_timeout: int) -> None:
    """Take every trigger, function, log and schema of ours off the source."""
    tables = remove_capture(source_url, CaptureSettings(schema=capture_schema, lock_timeout_ms=lock_timeout))
    click.echo(f"change capture removed ({tables} tables had triggers)")


def _follow(options: FollowOptions) -> FollowResult:
    """Follow until Ctrl-C/SIGTERM (or the options' seconds), then at most one more batch; then the
    target's foreign keys and triggers, if the follow took them off, come back and are validated.
    A second Ctrl-C/SIGTERM stops at once (the batch in flight rolls back; the log keeps it)."""
    with stop_on_signals() as stop, progress_display(unit="rows") as progress:
        result = follow_changes(options, progress, stop)
    with connect_target(options.target_url) as target, capture_errors():
        restore_constraints(target)
        validate_constraints(target)
    return result


@pg.command("follow")
@_source
@_target
@_capture_schema
@click.option("--seconds", type=click.FloatRange(0), help="Stop after this long [default: until Ctrl-C/SIGTERM].")
@click.option("--batch", default=5000, show_default=True, type=click.IntRange(1, 1_000_000), help="Entries a batch.")
@click.option("--max-log-size", default="10GB", show_default=True, help="Over this, capture is removed and it stops.")
@click.option("--status-file", type=click.Path(path_type=Path), help="The lag, as JSON, every second.")
@json_option
@handle_errors
def follow_command(
    source_url: str, target_url: str, capture_schema: str, seconds: float | None, batch: int, max_log_size: str,
    status_file: Path | None, as_json: bool,
) -> None:  # fmt: skip
    """Apply the source's change log to a copied target until stopped (resumes where a killed one left)."""
    options = FollowOptions(
        source_url, target_url, CaptureSettings(schema=capture_schema), batch=batch, status_file=status_file,
        seconds=seconds, max_log_bytes=parse_size(max_log_size),
    )  # fmt: skip
    result = _follow(options)
    if as_json:
        print_json(result.to_json())
    else:
        click.echo(
            f"applied {result.entries} entries ({result.rows} rows) in {result.batches} batches; "
            f"{result.queued} waiting, {result.seconds_behind:.1f} s behind"
        )
