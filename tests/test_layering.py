"""The layering rules, checked on the source: which package may import which.

    cli ──▶ runbook ──▶ worker ──▶ stores (postgres, redis, s3) ──▶ errors, progress, redact, …
     │         │
     │         └──▶ platform, infra, stackconfig
     └──▶ rehearse

The runbook starts its background workers through ``python -m migration.worker`` and a typed job,
never through a user-facing command (``python -m migration …``).
    stacks (the Pulumi program) ──▶ migration.stackconfig, migration.platform

A store never imports the runbook, the CLI or the platform; ``migration`` never imports
``stacks``; the stack config and ``ferry run --help`` load no Pulumi.

Inside ``migration/postgres``: ground ◀── copy/ ◀── capture/ ◀── the facade (no import upwards).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STORES = ("postgres", "redis", "s3")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _violations(package: Path, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted(package.rglob("*.py"))
        for name in sorted(_imports(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_migration_never_imports_stacks() -> None:
    assert _violations(ROOT / "migration", ("stacks",)) == []


@pytest.mark.parametrize("store", STORES)
def test_a_store_imports_neither_the_runbook_nor_the_cli_nor_the_platform(store: str) -> None:
    forbidden = ("migration.runbook", "migration.cli", "migration.platform", "migration.rehearse", "stacks")
    assert _violations(ROOT / "migration" / store, forbidden) == []


def test_stores_do_not_import_each_other() -> None:
    for store in STORES:
        others = tuple(f"migration.{other}" for other in STORES if other != store)
        assert _violations(ROOT / "migration" / store, others) == []


def _loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(out.stdout.split())


def test_the_stack_config_loads_neither_pulumi_nor_the_heroku_client() -> None:
    loaded = _loaded_after("import migration.stackconfig, stacks")
    assert not {m for m in loaded if m.split(".")[0] in ("pulumi", "pulumi_aws", "httpx")}


def test_ferry_run_help_loads_no_pulumi() -> None:
    code = (
        "import contextlib, io\n"
        "from migration.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['run', '--help'])"
    )
    loaded = _loaded_after(code)
    assert "migration.cli.run" in loaded  # the probe did reach the command
    assert not {m for m in loaded if m.split(".")[0].startswith("pulumi")}


def test_the_runbook_and_the_cli_use_stores_through_their_public_names() -> None:
    """``from migration.postgres import …``, never a store's inside (``migration.postgres.copy``)."""
    inside = tuple(f"migration.{store}." for store in STORES)
    found = [
        f"{path.relative_to(ROOT)} imports {name}"
        for package in ("runbook", "cli")
        for path in sorted((ROOT / "migration" / package).rglob("*.py"))
        for name in sorted(_imports(path))
        if name.startswith(inside)
    ]
    assert found == []


def test_the_worker_imports_neither_the_runbook_nor_the_cli() -> None:
    """But for one door: a ``--runner`` task's job is phases of the runbook (``RunPhasesJob``), which the
    worker hands to ``migration.runbook.intask`` and to nothing else of the runbook."""
    forbidden = ("migration.runbook", "migration.cli", "migration.platform", "migration.rehearse", "stacks")
    door = "migration/worker/runner.py imports migration.runbook.intask"
    assert [v for v in _violations(ROOT / "migration" / "worker", forbidden) if v != door] == []


def _strings(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_the_runbook_starts_no_user_command() -> None:
    """No ``python -m migration pg follow …``: a worker's options are a typed job, not argv."""
    found = [
        f"{path.relative_to(ROOT)} names {text!r}"
        for path in sorted((ROOT / "migration" / "runbook").rglob("*.py"))
        for text in sorted(_strings(path))
        if text == "migration" or (text.startswith("--") and " " not in text)
    ]
    assert found == []


_ADAPTERS = sorted(p for p in (ROOT / "migration" / "runbook" / "stores").glob("*.py") if p.name != "__init__.py")
#: What only a store's declarations (``configure``, ``moves``, ``endpoint``, ``addons``) may ask of the run.
_WHEREABOUTS = {"heroku", "settings", "platform", "old_url", "stack_output", "stack_outputs"}
#: ``app_config``: S3's part of ``endpoint``, what the switch sets (the new buckets' names, the app's key pair).
_DECLARATIONS = {"configure", "moves", "endpoint", "addons", "strategy", "app_config"}


def test_store_adapters_are_handed_a_narrow_view_not_the_run() -> None:
    """No adapter sees the run's whole context: its config and state sections, its sides and the freeze."""
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} {name}"
        for path in _ADAPTERS
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        for name in [node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""]
        if name in ("RunContext", "ctx")
    ]
    assert found == []


def test_a_stores_phases_never_ask_where_its_sides_are() -> None:
    """Only a store's declarations know which side is the app's host (Heroku) and which the stack's: the
    phases work on ``run.from_side`` and ``run.to_side``, so the same code runs in either direction."""
    found = []
    for path in _ADAPTERS:
        for function in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(function, ast.FunctionDef) or function.name in _DECLARATIONS:
                continue
            for node in ast.walk(function):
                name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
                if name in _WHEREABOUTS or (isinstance(node, ast.Name) and name == "where"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {function.name} uses {name}")
    assert found == []


def test_a_store_reads_how_it_moves_in_its_strategy_method_only() -> None:
    """``run.config.capture`` (PostgreSQL) and ``run.config.copy`` (Redis) pick a strategy, in one place each."""
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno} in {function.name}"
        for path in _ADAPTERS
        for function in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(function, ast.FunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Attribute)
        and node.attr in ("capture", "copy")
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "config"
    ]
    assert [line.split(" in ")[1] for line in found] == ["strategy", "strategy"], found


# Inside migration/postgres, bottom to top: a module imports its own layer and those below, never
# one above. The ground is every top-level module but the facade's (a new one starts there, the
# strictest place); copy/, dump/ and capture/ are the folders; the facade combines them for the outside.
PG = "migration.postgres"
PG_LAYERS = ("ground", "copy", "dump", "capture", "facade")
PG_FACADE = (PG, f"{PG}.preflight", f"{PG}.freeze")


def _pg_module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _pg_layer(module: str) -> str:
    if module in PG_FACADE:
        return "facade"
    for layer in ("copy", "dump", "capture"):
        if module == f"{PG}.{layer}" or module.startswith(f"{PG}.{layer}."):
            return layer
    return "ground"


def _pg_imports(path: Path) -> set[str]:
    """The modules of migration.postgres *path* imports; ``from migration.postgres import catalog`` is
    an import of ``migration.postgres.catalog`` (a module), not of the facade."""
    package = _pg_module(path) if path.name == "__init__.py" else _pg_module(path).rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                inner = f"{module}.{alias.name}"
                is_module = (ROOT / Path(*inner.split("."))).with_suffix(".py").exists() or (
                    ROOT / Path(*inner.split(".")) / "__init__.py"
                ).exists()
                found.add(inner if is_module else module)
    return {name for name in found if name == PG or name.startswith(PG + ".")}


def _pg_violations() -> list[str]:
    found = []
    for path in sorted((ROOT / "migration" / "postgres").rglob("*.py")):
        layer = PG_LAYERS.index(_pg_layer(_pg_module(path)))
        for name in sorted(_pg_imports(path)):
            if PG_LAYERS.index(_pg_layer(name)) > layer:
                found.append(f"{path.relative_to(ROOT)} ({PG_LAYERS[layer]}) imports {name} ({_pg_layer(name)})")
    return found


def test_postgres_layers_import_only_downwards() -> None:
    """ground ──▶ nothing of postgres above it; copy/ ──▶ ground; capture/ ──▶ copy/, ground; the facade
    (``migration.postgres``, preflight, freeze) ──▶ any. So the copy works, and is tested, without capture."""
    assert _pg_violations() == []


def test_postgres_layers_name_real_modules() -> None:
    for module in PG_FACADE:
        path = ROOT / Path(*module.split("."))
        assert path.with_suffix(".py").exists() or (path / "__init__.py").exists(), module
    assert _pg_layer(f"{PG}.footprint") == "ground" and _pg_layer(f"{PG}.copy.state") == "copy"
    assert _pg_layer(f"{PG}.capture") == "capture" and _pg_layer(f"{PG}.copy") == "copy"
