"""Indexing a project: import its task modules in a runtime process and turn the manifest into
a Version. Runs in a subprocess so a broken module never touches the daemon."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import ValidationError
from .home import user_umask
from .ids import new_id
from .limits import name_problem, spawn_failure
from .machines import check_machine, parse_out_of_memory
from .store.models import TaskDef, Version

INDEX_TIMEOUT_S = 120.0


async def index_project(project_dir: str, dirs: list[str], python: str | None = None,
                        env: dict[str, str] | None = None) -> Version:
    """Import the project's tasks and return the version they make (not yet registered).

    Raises ValidationError with the traceback when a module fails to import."""
    root = Path(project_dir).resolve()
    if not root.is_dir():
        raise ValidationError(f"Project directory {project_dir} does not exist")
    with tempfile.TemporaryDirectory(prefix="trigger-local-index-") as tmp:
        out = Path(tmp) / "manifest.json"
        proc = await _start_indexer(python or sys.executable, root, out, dirs, env)
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), INDEX_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            raise ValidationError(f"Indexing took longer than {INDEX_TIMEOUT_S:.0f}s: does a task "
                                  "module do slow work at import time?") from None
        manifest: dict[str, Any] = {}
        if out.exists():
            try:
                manifest = json.loads(out.read_text())
            except ValueError:
                manifest = {}
    if proc.returncode != 0 or "error" in manifest or "tasks" not in manifest:
        error = manifest.get("error") or {}
        trace = error.get("traceback") or stderr.decode(errors="replace")[-8000:]
        message = error.get("message") or f"Indexing exited with code {proc.returncode}"
        if isinstance(missing := error.get("missing"), str):
            used = python or sys.executable
            message += (f". Tasks run with {used}: install the package that provides "
                        f"{missing!r} there (`{used} -m pip install PACKAGE`)")
        raise ValidationError(f"Indexing failed: {message}", traceback=trace,
                              file=error.get("file"))
    return Version(id=new_id("version"), project_dir=str(root), created_at=time.time(),
                   tasks=tasks_from_manifest(manifest), python=python or sys.executable,
                   dirs=list(dirs), env=dict(env or {}))


async def _start_indexer(python: str, root: Path, out: Path, dirs: list[str],
                         env: dict[str, str] | None) -> asyncio.subprocess.Process:
    """The `runtime index` process; ValidationError (not a 500) when it cannot start."""
    try:
        return await asyncio.create_subprocess_exec(
            python, "-m", "trigger_local.runtime", "index", "--out", str(out),
            cwd=str(root), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {}), "TRIGGER_LOCAL_UMASK": f"{user_umask():03o}",
                 "TRIGGER_LOCAL_PROJECT_DIR": str(root),
                 "TRIGGER_LOCAL_TASK_DIRS": json.dumps(dirs), "PYTHONUNBUFFERED": "1"})
    except OSError as exc:
        reason = spawn_failure(exc, python, str(root))
        if reason is None:
            raise
        raise ValidationError(f"Indexing failed: {reason}") from None


def tasks_from_manifest(manifest: dict[str, Any]) -> list[TaskDef]:
    """The TaskDefs of an index manifest (docs/worker-protocol.md, Indexing). Task ids, machine
    presets and queue names are checked again here (the SDK checks them at import), so any
    manifest gets the same rule."""
    for t in manifest["tasks"]:
        _check_id(t)
        _check_machines(t)
        _check_queue(t)
    return [TaskDef(task_id=t["id"], queue=t.get("queue") or f"task/{t['id']}",
                    file=t.get("file", ""),
                    export_name=t.get("export_name", ""), retry=t.get("retry"),
                    max_duration_s=t.get("max_duration_s"), machine=t.get("machine"),
                    schema=t.get("schema"),
                    queue_concurrency_limit=t.get("queue_concurrency_limit"),
                    queue_is_custom=bool(t.get("queue_is_custom")), schedule=t.get("schedule"),
                    rate_limit=t.get("rate_limit"), shared=bool(t.get("shared")))
            for t in manifest["tasks"]]


def _check_id(task: dict[str, Any]) -> None:
    """A task id is a name (`limits.name_problem`): `dev`, `runs ls`, `queues ls` and `status`
    print it, so one holding an escape sequence acted on the terminal (cleared it, set its
    title). Shown with repr, so the error itself prints none."""
    task_id = task.get("id")
    if not isinstance(task_id, str) or not task_id.strip():
        raise ValidationError(f"A task needs a non-empty string id, not {task_id!r}"[:300])
    if (problem := name_problem(task_id)) is not None:
        raise ValidationError(f"Task {task_id[:100]!r}: its id {problem}")


def _check_queue(task: dict[str, Any]) -> None:
    """A blank queue name (`" "`): the daemon refuses it in a trigger's `options.queue.name`,
    the SDK where a queue is defined; a manifest an older SDK wrote (in the project's own
    interpreter) may still hold one. An empty or absent one is the task's own queue. A custom
    queue's name follows the rules of a trigger's `options.queue.name` (`name_problem`)."""
    name = task.get("queue")
    if isinstance(name, str) and name and not name.strip():
        raise ValidationError(f"Task {task.get('id')!r}: a queue needs a name that is not "
                              f"empty or only whitespace, not {name!r}"[:300])
    if isinstance(name, str) and name and task.get("queue_is_custom") \
            and (problem := name_problem(name)) is not None:
        raise ValidationError(f"Task {task.get('id')!r}: the name of its queue {name[:100]!r} "
                              f"{problem}")


def _check_machines(task: dict[str, Any]) -> None:
    if task.get("machine") is not None:
        check_machine(task["machine"], f"machine of task {task.get('id')!r}")
    retry = task.get("retry")
    if isinstance(retry, dict):
        parse_out_of_memory(retry.get("out_of_memory"),
                            f"retry out_of_memory of task {task.get('id')!r}")
