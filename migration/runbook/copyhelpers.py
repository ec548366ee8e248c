"""The copy's helper tasks (``--tasks N``): N-1 tasks beside the leg that copies PostgreSQL, each claiming parts
of the copy's plan on the target (:func:`migration.postgres.help_copy`); the leg's own copy leads."""

from __future__ import annotations

from migration.errors import RunnerError
from migration.runbook.context import RunContext
from migration.runbook.stores import moved_addons
from migration.runner import ENV_REF, Runner, TaskSpec
from migration.runner.aws import endpoint_from_env
from migration.worker import PostgresCopyHelperJob, job_to_json

__all__ = ["end_copy_helpers", "start_copy_helpers"]


def start_copy_helpers(ctx: RunContext, runner: Runner, names: list[str], secrets: dict[str, str]) -> list[str]:
    """With ``--tasks N``, N-1 tasks beside the leg that copies PostgreSQL (``copy`` with capture, else
    ``final-sync``): each claims parts of the copy's plan on the target (:func:`migration.postgres.help_copy`).

    A helper has no Heroku key: the source's URL is read from the app here and handed to it as the
    ``FERRY_SOURCE_DATABASE_URL`` secret (an ECS task's is written to Secrets Manager first)."""
    settings, migration = ctx.settings, ctx.config.migration
    copying = "copy" if migration.capture else "final-sync"
    if settings.tasks < 2 or not migration.postgres or copying not in names or ctx.state.done(copying):
        return []
    move = next(move for move in moved_addons(ctx) if move.config_var == ctx.config.heroku.database_config_var)
    source = ctx.old_url(move)
    if source is None:
        raise RunnerError(f"the app has no {move.config_var}: no source for the copy's helpers", side="source")
    target = secrets.get("FERRY_TARGET_DATABASE_URL")
    if target is None:
        raise RunnerError("the copy's helpers need the target's URL, which this run does not have", side="target")
    helper_secrets = {"FERRY_SOURCE_DATABASE_URL": source, "FERRY_TARGET_DATABASE_URL": target}
    if runner.name == "ecs":
        _put_source_secret(ctx, source)
    jobs = settings.jobs or migration.jobs
    started = []
    for n in range(1, settings.tasks):
        job = PostgresCopyHelperJob(
            source_url=f"{ENV_REF}FERRY_SOURCE_DATABASE_URL",
            target_url=f"{ENV_REF}FERRY_TARGET_DATABASE_URL",
            status_file=settings.state_dir / f"copy-helper-{n}.json",
            jobs=jobs,
            # The plan appears once the leg reaches the copy: after the catch-up, without capture.
            wait_seconds=600.0 + (0.0 if migration.capture else migration.catch_up_seconds),
        )
        task_id = runner.start(TaskSpec(name=f"copy-helper-{n}", job=job_to_json(job), secrets=helper_secrets))
        ctx.say(f"[copy-helper-{n}] task {task_id} started ({runner.name})")
        started.append(task_id)
    return started


def end_copy_helpers(ctx: RunContext, runner: Runner, helpers: list[str]) -> None:
    """The leg is over: a helper still waiting (the leg failed before its copy) is stopped; each one's last word
    is said. A helper that failed or died takes nothing with it: its parts are the leader's or another's."""
    for task_id in helpers:
        if runner.running(task_id):
            runner.stop(task_id)
        outcome = runner.wait(task_id, lambda _line: None, timeout=180)
        said = outcome.last_line if outcome is not None else "still running"
        ctx.say(f"[copy-helper] {task_id}: {said or 'ended'}")


def _put_source_secret(ctx: RunContext, source: str) -> None:
    from migration.runner.aws import aws_client, aws_errors

    arns = ctx.stack_output("runnerSecrets")
    arn = arns.get("FERRY_SOURCE_DATABASE_URL") if isinstance(arns, dict) else None
    if not arn:
        raise RunnerError("--tasks: the stack declares no source-database-url secret for the copy's helpers "
                          "(`pulumi up` declares it with ferry:runner)")  # fmt: skip
    client = aws_client("secretsmanager", ctx.config.aws_region, endpoint_from_env())
    with aws_errors(f"Secrets Manager PutSecretValue {arn}"):
        client.put_secret_value(SecretId=arn, SecretString=source)
