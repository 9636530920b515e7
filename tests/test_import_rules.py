"""ARCHITECTURE §1's import rules, read from the source with `ast`: nothing imports aiosqlite,
and the clients (cli, tui) and the task side (sdk, runtime) never reach into the
daemon's store or engine. A package that does not exist yet simply passes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_DAEMON = ("trigger_local.store", "trigger_local.engine")
CLIENT_PACKAGES = ["trigger_local/cli", "trigger_local/sdk", "trigger_local/runtime", "tui"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Every absolute module name `source` imports, relative imports resolved against `module`
    (`from .. import store` counts as importing `<parent>.store`)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def python_files(folder: str) -> list[Path]:
    path = ROOT / folder
    return sorted(path.rglob("*.py")) if path.is_dir() else []


def imports_of(path: Path) -> set[str]:
    return imported_modules(path.read_text(encoding="utf-8"), module_name(path),
                            path.name == "__init__.py")


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_the_checker_resolves_relative_imports() -> None:
    source = "import aiosqlite\nfrom ..store import Ops\nfrom .. import engine\nfrom .x import y\n"
    found = imported_modules(source, "trigger_local.cli.main", is_package=False)
    assert {"aiosqlite", "trigger_local.store", "trigger_local.engine",
            "trigger_local.cli.x"} <= found
    found = imported_modules("from . import models", "trigger_local.store", is_package=True)
    assert "trigger_local.store.models" in found


def test_nothing_imports_aiosqlite() -> None:
    """The store runs plain sqlite3 on the event loop (docs/architecture.md says why); aiosqlite
    is not a dependency, so an import of it would fail on a clean install."""
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("trigger_local", "tui")
        for path in python_files(folder)
        if any(within(name, "aiosqlite") for name in imports_of(path))
    ]
    assert offenders == []


@pytest.mark.parametrize("folder", CLIENT_PACKAGES)
def test_clients_and_task_code_never_import_store_or_engine(folder: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(name for name in imports_of(path)
                                            if any(within(name, f) for f in FORBIDDEN_DAEMON))
        for path in python_files(folder)
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_a_task_process_boots_without_croniter() -> None:
    # croniter runs `file -b <python>` in a subprocess at import: a task process (and every
    # run it starts) should not pay that for a task with no schedule
    import subprocess
    import sys

    code = ("import sys, trigger_local.sdk, trigger_local.runtime.worker; "
            "print('croniter' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, timeout=120)
    assert shown.stdout.strip() == "False", shown.stdout + shown.stderr
