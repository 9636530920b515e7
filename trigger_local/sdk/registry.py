"""The tasks this process knows: `@task` and `@schema_task` define a `Task` and register it
under its id.

Importing a task module registers its tasks; defining the same id from two different
functions is an error (`DuplicateTaskIdError`), while importing the same function again (a
module reloaded) replaces the entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import DuplicateTaskIdError, ValidationError
from .hooks import ALIASES, GLOBAL, KINDS, Hook
from .options import Queue
from .retry import Retry
from .tasks import Task

_REGISTRY: dict[str, Task] = {}


def task(id: str, *, queue: Queue | str | None = None, retry: Retry | dict[str, Any] | None = None,
         max_duration: Any = None, machine: str | None = None,
         rate_limit: dict[str, Any] | None = None,
         isolated: bool = False, **hooks: Hook) -> Callable[[Callable[..., Any]], Task]:
    """Decorate `fn(payload, ctx)` or `fn(payload)`, sync or async, as the task `id`.
    `rate_limit={"limit": 100, "period": "1m", "per_key": False}` caps starts on its queue.
    `isolated=True`: each run has a task process of its own (an async task's runs otherwise
    share processes, docs/worker-protocol.md "Many runs per process"). `hooks`: lifecycle hooks
    by kind (`on_start=fn`, `middleware=cm`, …; docs/hooks.md)."""
    _check_hooks(id, hooks)

    def decorate(fn: Callable[..., Any]) -> Task:
        t = Task(fn, id=id, queue=queue, retry=retry, max_duration=max_duration, machine=machine,
                 rate_limit=rate_limit, isolated=isolated, hooks=dict(hooks))
        register(t)
        return t

    return decorate


def schema_task(id: str, *, schema: Any, queue: Queue | str | None = None,
                retry: Retry | dict[str, Any] | None = None, max_duration: Any = None,
                machine: str | None = None, isolated: bool = False,
                **hooks: Hook) -> Callable[[Callable[..., Any]], Task]:
    """Like `task`, with a pydantic model: the payload is validated into an instance of it
    before the function runs, and the manifest carries its JSON schema."""
    if not hasattr(schema, "model_validate") or not hasattr(schema, "model_json_schema"):
        raise ValidationError(f"schema_task {id!r}: schema must be a pydantic model class")
    _check_hooks(id, hooks)

    def decorate(fn: Callable[..., Any]) -> Task:
        t = Task(fn, id=id, queue=queue, retry=retry, max_duration=max_duration, machine=machine,
                 schema=schema, isolated=isolated, hooks=dict(hooks))
        register(t)
        return t

    return decorate


def _check_hooks(task_id: str, hooks: dict[str, Hook]) -> None:
    # at decoration time, so a misspelt option names itself before the function is defined
    for kind in hooks:
        if ALIASES.get(kind, kind) not in KINDS:
            raise ValidationError(f"task {task_id!r}: unknown option {kind!r} (hooks: "
                                  f"{', '.join(KINDS)})")


def register(task: Task) -> None:
    existing = _REGISTRY.get(task.id)
    if existing is not None and _origin(existing.fn) != _origin(task.fn):
        raise DuplicateTaskIdError(
            f"Task id {task.id!r} is defined twice: by {_where(existing.fn)} and by "
            f"{_where(task.fn)}. Task ids must be unique in a project.")
    _REGISTRY[task.id] = task


def get_task(task_id: str) -> Task | None:
    return _REGISTRY.get(task_id)


def all_tasks() -> list[Task]:
    return list(_REGISTRY.values())


def clear() -> None:
    """Forget every task and global hook (tests, and the indexer before it imports a
    project)."""
    _REGISTRY.clear()
    GLOBAL.clear()


def _origin(fn: Callable[..., Any]) -> tuple[str, str]:
    return getattr(fn, "__module__", ""), getattr(fn, "__qualname__", repr(fn))


def _where(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    place = f"{code.co_filename}:{code.co_firstlineno}" if code else getattr(fn, "__module__", "?")
    return f"{getattr(fn, '__qualname__', fn)!r} ({place})"
