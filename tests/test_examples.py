"""What ``examples/github-actions.yml`` and the ``Dockerfile`` promise.

The workflow: AWS only through OIDC (no access key anywhere), and every ``ferry`` command it runs is one the CLI
has, with every option it passes (a renamed option fails here, not in someone's deployment). The image: a user
that is not root, ``ferry`` as its entry point, no build argument or variable named like a secret, a build
context without ``.venv`` or ``.git``; and, where a container engine answers, the image built and run.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from migration.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / "examples" / "github-actions.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

#: The ``ferry`` commands the workflow is meant to run, ``<stack>`` as ``ci``.
EXPECTED_COMMANDS = [
    ["ferry", "secrets", "set", "--stack", "ci", "--from-env"],
    ["ferry", "run", "--stack", "ci", "--runner", "ecs", "--yes", "--json"],
]
_SECRET_WORDS = ("KEY", "SECRET", "TOKEN", "PASSWORD")


# ---- the workflow ---------------------------------------------------------------------------------------------


def _workflow() -> dict[Any, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(data, dict), f"{WORKFLOW} is not a YAML mapping"
    return data


def _jobs(workflow: dict[Any, Any]) -> dict[str, dict[str, Any]]:
    jobs = workflow.get("jobs")
    assert isinstance(jobs, dict) and jobs, "the workflow has no jobs"
    return jobs


def _steps(workflow: dict[Any, Any]) -> Iterator[dict[str, Any]]:
    for job in _jobs(workflow).values():
        yield from job.get("steps", [])


def _simple_commands(line: str) -> Iterator[list[str]]:
    """The simple commands of one shell line: split at ``;``, ``&&``, ``||``, ``|``, ``&``, redirections dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    words: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in (";", "&&", "||", "|", "&", "(", ")"):
            if words:
                yield words
            words = []
        elif token[:1] in ("<", ">"):  # a redirection and its target
            i += 1
        elif token.isdigit() and i + 1 < len(tokens) and tokens[i + 1][:1] in ("<", ">"):  # 2>…
            pass
        else:
            words.append(token)
        i += 1
    if words:
        yield words


def ferry_commands(workflow: dict[Any, Any]) -> list[list[str]]:
    """Every ``ferry …`` command of the workflow's ``run:`` steps, each ``${{ … }}`` and ``$VAR`` read as ``ci``."""
    found: list[list[str]] = []
    for step in _steps(workflow):
        script = step.get("run")
        if not isinstance(script, str):
            continue
        script = re.sub(r"\$\{\{.*?\}\}", "ci", script.replace("\\\n", " "))
        script = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", "ci", script)
        for line in script.splitlines():
            if line.lstrip().startswith("#") or not re.search(r"(?<![\w.-])(?:\S*/)?ferry(?![\w.-])", line):
                continue  # only lines that name ferry are read as shell (others may quote beyond shlex)
            for words in _simple_commands(line):
                while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):  # VAR=value ferry …
                    words = words[1:]
                if words and Path(words[0]).name == "ferry":
                    found.append(["ferry", *words[1:]])
    return found


def _resolve(args: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The click command *args* (after ``ferry``) name, its path, and the arguments left for it."""
    command: click.Command = main
    ctx = click.Context(main, info_name="ferry")
    path: list[str] = []
    rest = list(args)
    while isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"ferry has no command {' '.join([*path, rest[0]])!r}"
        command = sub
        path.append(rest.pop(0))
    return command, path, rest


def test_the_workflow_asks_for_an_oidc_token_and_reads_the_repository_only() -> None:
    workflow = _workflow()
    scopes = [workflow.get("permissions") or {}]
    scopes += [job["permissions"] for job in _jobs(workflow).values() if "permissions" in job]
    for permissions in scopes:
        assert permissions.get("id-token") == "write", permissions
        assert permissions.get("contents") == "read", permissions
        assert set(permissions.values()) <= {"read", "write", "none"}


def test_the_workflow_holds_no_long_lived_aws_key() -> None:
    text = WORKFLOW.read_text()
    for word in ("aws-access-key-id", "aws-secret-access-key", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert word.lower() not in text.lower(), f"{WORKFLOW.name} names {word}: AWS is reached through OIDC only"


def test_aws_credentials_come_from_assuming_a_role() -> None:
    steps = [
        s for s in _steps(_workflow()) if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials")
    ]
    assert steps, "no aws-actions/configure-aws-credentials step"
    for step in steps:
        inputs = step.get("with") or {}
        assert str(step["uses"]).endswith("@v4"), step["uses"]
        assert re.fullmatch(r"\$\{\{\s*vars\.\w+\s*\}\}", str(inputs.get("role-to-assume", ""))), (
            f"role-to-assume must come from a repository variable: {inputs}"
        )


def test_every_run_of_a_stack_waits_for_the_one_before() -> None:
    deploys = [job for job in _jobs(_workflow()).values() if "workflow_dispatch" in str(job.get("if", ""))]
    assert deploys, "no job runs on workflow_dispatch"
    for job in deploys:
        concurrency = job.get("concurrency") or {}
        assert "inputs.stack" in str(concurrency.get("group", "")), concurrency
        assert concurrency.get("cancel-in-progress") is False, "a migration must never be cancelled midway"


def test_the_workflow_runs_the_ferry_commands_it_means_to() -> None:
    found = ferry_commands(_workflow())
    assert sorted(found) == sorted(EXPECTED_COMMANDS), f"the workflow runs {[shlex.join(c) for c in found]}"


@pytest.mark.parametrize("command", ferry_commands(_workflow()), ids=" ".join)
def test_each_ferry_command_of_the_workflow_exists_with_its_options(command: list[str]) -> None:
    args = command[1:]
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, f"`{shlex.join([*command, '--help'])}` exited {result.exit_code}:\n{result.output}"
    cmd, path, rest = _resolve(args)
    for word in rest:
        if word.startswith("-"):
            flag = word.split("=", 1)[0]
            assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", result.output), (
                f"`ferry {' '.join(path)} --help` does not mention {flag}:\n{result.output}"
            )
    # A value the workflow passes to a choice (--runner ecs) must still be one of its choices.
    options = {opt: p for p in cmd.params if isinstance(p, click.Option) for opt in p.opts}
    for flag, value in itertools.pairwise(rest):
        option = options.get(flag)
        if option is not None and not option.is_flag and isinstance(option.type, click.Choice):
            assert value in option.type.choices, f"{flag} {value}: not one of {list(option.type.choices)}"


# ---- the Dockerfile -------------------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, (KEYWORD, rest), continuation lines joined, comments left out."""
    logical: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    result = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def _stages() -> tuple[list[tuple[str, str]], list[list[tuple[str, str]]]]:
    """The global instructions (before the first FROM) and each stage's, FROM first."""
    head: list[tuple[str, str]] = []
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions():
        if keyword == "FROM":
            stages.append([])
        (stages[-1] if stages else head).append((keyword, rest))
    assert stages, "the Dockerfile has no FROM"
    return head, stages


def _names_set(keyword: str, rest: str) -> list[str]:
    """The variables an ARG or ENV instruction names."""
    if keyword == "ARG":
        return [rest.split("=", 1)[0].strip()]
    words = shlex.split(rest)
    if words and "=" not in words[0]:  # the legacy form: ENV NAME value
        return [words[0]]
    return [word.split("=", 1)[0] for word in words if "=" in word]


def _ignored(path: str) -> bool:
    """Whether .dockerignore leaves the top-level *path* out of the build context (the last match decides)."""
    ignored = False
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        if fnmatch.fnmatchcase(path, pattern) or (pattern.startswith("**/") and fnmatch.fnmatchcase(path, pattern[3:])):
            ignored = not negated
    return ignored


def test_the_image_runs_ferry_as_a_user_that_is_not_root() -> None:
    _, stages = _stages()
    runtime = stages[-1]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    user = users[-1].split(":", 1)[0]
    assert user not in ("root", "0"), f"USER {users[-1]}"
    entrypoints = [rest for keyword, rest in runtime if keyword == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["ferry"], entrypoints
    cmds = [rest for keyword, rest in runtime if keyword == "CMD"]
    assert cmds and json.loads(cmds[-1]) == ["--help"], cmds
    env = {name for keyword, rest in runtime if keyword == "ENV" for name in _names_set(keyword, rest)}
    assert {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"} <= env


def test_the_image_starts_from_python_3_11_slim_bookworm() -> None:
    head, stages = _stages()
    args = {}
    for keyword, rest in head:
        if keyword == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name.strip()] = value.strip()
    base = stages[-1][0][1].split()[0]
    base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), base)
    assert re.fullmatch(r"python:3\.11-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base


def test_no_build_argument_or_variable_is_named_like_a_secret() -> None:
    head, stages = _stages()
    for keyword, rest in [*head, *(instruction for stage in stages for instruction in stage)]:
        if keyword in ("ARG", "ENV"):
            for name in _names_set(keyword, rest):
                assert not any(word in name.upper() for word in _SECRET_WORDS), f"{keyword} {rest}"
        if keyword == "ADD":
            assert not re.search(r"\b(https?|git)://|git@", rest), f"ADD of a remote source: ADD {rest}"


def test_the_build_context_leaves_out_the_venv_and_git_but_not_what_is_copied() -> None:
    assert _ignored(".venv") and _ignored(".git")
    _, stages = _stages()
    for stage in stages:
        for keyword, rest in stage:
            if keyword == "COPY" and "--from=" not in rest:
                for source in shlex.split(rest)[:-1]:
                    assert not _ignored(source.strip("/")), f"COPY {rest}: .dockerignore leaves {source} out"


# ---- the image, where a container engine answers ---------------------------------------------------------------


def _engine() -> tuple[str | None, str]:
    """A container engine that answers ``info``, or ``None`` and why none does."""
    reasons = []
    for name in ("docker", "podman"):
        path = shutil.which(name)
        if path is None:
            reasons.append(f"no {name}")
            continue
        try:
            proc = subprocess.run([path, "info"], capture_output=True, text=True, timeout=30, check=False)
        except subprocess.TimeoutExpired:
            reasons.append(f"`{name} info` did not answer in 30 s")
            continue
        if proc.returncode == 0:
            return path, ""
        lines = [ln.strip() for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        said = next((ln for ln in lines if re.search(r"cannot connect|error", ln, re.I)), lines[-1] if lines else "")
        reasons.append(f"`{name} info` exited {proc.returncode}: {said}")
    return None, "; ".join(reasons)


@pytest.fixture(scope="module")
def image() -> Iterator[tuple[str, str]]:
    engine, why = _engine()
    if engine is None:
        pytest.skip(f"no working container engine ({why})")
    tag = f"ferry:pytest-{os.getpid()}"  # one per test process: another's teardown removes only its own
    build = subprocess.run(
        [engine, "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=3600, check=False
    )
    assert build.returncode == 0, f"the image did not build:\n{(build.stdout + build.stderr)[-4000:]}"
    yield engine, tag
    subprocess.run([engine, "rmi", tag], capture_output=True, check=False)


def _run(image: tuple[str, str], *args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    engine, tag = image
    command = [engine, "run", "--rm", *(["--entrypoint", entrypoint] if entrypoint else []), tag, *args]
    return subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_the_image_answers_ferry_help_as_its_own_user(image: tuple[str, str]) -> None:
    shown = _run(image)
    assert shown.returncode == 0, shown.stderr
    assert "Usage: ferry" in shown.stdout
    uid = _run(image, "-u", entrypoint="id")
    assert uid.stdout.strip() not in ("", "0"), uid


@pytest.mark.slow
def test_the_worker_refuses_an_empty_job_in_one_line(image: tuple[str, str]) -> None:
    # What an ECS task runs: the entry point replaced with `python -m migration.worker`, here with no job.
    worker = _run(image, "-m", "migration.worker", entrypoint="python")
    lines = [ln for ln in worker.stderr.splitlines() if ln.strip()]
    assert worker.returncode != 0
    assert "Traceback" not in worker.stderr
    assert len(lines) == 1 and "the job is not JSON" in lines[0], worker.stderr


@pytest.mark.slow
def test_the_image_dumps_with_a_client_that_speaks_tls(image: tuple[str, str]) -> None:
    # ferry's choice of pg_dump in the image; it must accept sslmode=require (Heroku and RDS ask for TLS).
    chosen = _run(
        image,
        "-c",
        "from migration.postgres.copy.tools import find_client_tools as f; print(f().pg_dump)",
        entrypoint="python",
    )
    assert chosen.returncode == 0, chosen.stderr
    pg_dump = chosen.stdout.strip()
    assert pg_dump.startswith("/usr/lib/postgresql/"), pg_dump
    tried = _run(image, "postgresql://nobody@127.0.0.1:1/none?sslmode=require", entrypoint=pg_dump)
    assert tried.returncode != 0
    assert "SSL support is not compiled in" not in tried.stderr, tried.stderr
