"""Finding and importing a project's task modules, and describing their tasks (the manifest).

Task files are every `*.py` below the task dirs, skipping files and folders whose name starts
with `_` or `.`. A file whose path from the project root is a valid dotted name (e.g.
`trigger/videos/convert.py` → `trigger.videos.convert`) is imported under that name, so task
modules can import each other without a second copy (which would register tasks twice).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ImportFailure
from ..sdk import registry
from ..sdk.tasks import Task


def task_files(project_dir: Path, dirs: list[str]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        root = (project_dir / d).resolve()
        if not root.is_dir():
            print(f"trigger-local: task dir {root} does not exist", file=sys.stderr)
            continue
        for path in sorted(root.rglob("*.py")):
            rel = path.relative_to(root).parts
            if not any(part.startswith(("_", ".")) for part in rel):
                files.append(path)
    return files


def _module_name(project_dir: Path, path: Path) -> str | None:
    try:
        parts = path.with_suffix("").relative_to(project_dir.resolve()).parts
    except ValueError:
        return None
    return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None


def import_file(project_dir: Path, path: Path) -> ModuleType:
    name = _module_name(project_dir, path)
    if name is not None:
        return importlib.import_module(name)
    # not importable by name (a dir like `my-tasks`): a private, stable module name
    name = "_trigger_local_tasks_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_project(project_dir: Path, dirs: list[str],
                 only: list[str] | None = None) -> list[ModuleType]:
    """Import every task file once (or only the project-relative files in `only`: a task process
    imports just the files its version indexed, so a file added or broken since then cannot
    stop it). Raises ImportFailure naming the first file that fails."""
    project_dir = project_dir.resolve()
    if str(project_dir) not in sys.path:
        sys.path.insert(0, str(project_dir))
    modules = []
    paths = task_files(project_dir, dirs) if only is None else _init_files(project_dir, dirs) + [
        project_dir / f for f in only if f not in _init_names(dirs)]
    for path in paths:
        rel = path.relative_to(project_dir).as_posix()
        try:
            modules.append(import_file(project_dir, path))
        except (Exception, SystemExit) as exc:
            raise ImportFailure(rel, f"{rel}: {type(exc).__name__}: {exc}",
                                traceback.format_exc(), _package(project_dir, exc)) from exc
    return modules


def _package(project_dir: Path, exc: BaseException) -> str | None:
    """The module a task file imports that is neither installed nor the project's own."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    if (project_dir / top).exists() or (project_dir / f"{top}.py").exists():
        return None
    return exc.name


def _init_names(dirs: list[str]) -> list[str]:
    return [f"{d.strip('/')}/init.py" for d in dirs]


def _init_files(project_dir: Path, dirs: list[str]) -> list[Path]:
    # `init.py` at the root of a trigger dir holds global hooks (docs/hooks.md): a task process
    # imports it first, although it defines no task
    return [p for p in (project_dir / n for n in _init_names(dirs)) if p.is_file()]


def build_manifest(project_dir: Path, modules: list[ModuleType]) -> dict[str, Any]:
    """`{"tasks": [TaskManifest, …]}` for every registered task. Raises ImportFailure when two
    tasks declare one shared queue with different concurrency limits."""
    project_dir = project_dir.resolve()
    export_names: dict[int, str] = {}
    for module in modules:
        for name, value in vars(module).items():
            if isinstance(value, Task):
                export_names.setdefault(id(value), name)
    tasks: list[dict[str, Any]] = []
    limits: dict[str, tuple[int | None, str]] = {}
    for t in registry.all_tasks():
        entry = t.manifest()
        entry["export_name"] = export_names.get(id(t), entry["export_name"])
        entry["file"] = _relative(project_dir, entry["file"])
        if entry["queue_is_custom"]:
            limit = limits.setdefault(entry["queue"], (entry["queue_concurrency_limit"], t.id))
            if limit[0] != entry["queue_concurrency_limit"]:
                raise ImportFailure(entry["file"],
                                    f"Queue {entry['queue']!r} has concurrency_limit {limit[0]} in "
                                    f"task {limit[1]!r} but {entry['queue_concurrency_limit']} in "
                                    f"task {t.id!r}: define the queue once and share it", "")
        tasks.append(entry)
    return {"tasks": tasks}


def _relative(project_dir: Path, file: str) -> str:
    if not file:
        return ""
    try:
        return Path(file).resolve().relative_to(project_dir).as_posix()
    except ValueError:
        return file
