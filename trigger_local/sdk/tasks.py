"""A task definition (`Task`, made by `@task`/`@schema_task` in registry.py) and triggering
tasks (`Task.trigger…`, `tasks.trigger…`).

Inside a task run, triggers go through the worker protocol, so the child knows its parent and
`trigger_and_wait` can block on the child's waitpoint; in app code they go through the
management client. Every call has a blocking `_sync` form.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from .. import packets, protocol
from ..durations import parse_duration
from ..errors import ValidationError
from ..limits import name_problem
from ..machines import check_machine
from ..ratelimit import parse_rate_limit
from .context import current_run, require_run
from .hooks import ALIASES, GLOBAL, Hook, HookSet
from .options import Queue, trigger_options
from .replay import body as replay_body
from .replay import completed
from .results import BatchHandle, RunHandle, TaskRunResult
from .retry import Retry
from .waits import wait_on


class Task:
    """A task definition: `id`, the user function `fn`, and how it runs (queue, retry,
    max_duration, machine, optional pydantic `schema`). Created by `@task`/`@schema_task`,
    registered under its id at import time. Calling the object calls `fn` directly."""

    def __init__(self, fn: Callable[..., Any], *, id: str, queue: Queue | str | None = None,
                 retry: Retry | dict[str, Any] | None = None, max_duration: Any = None,
                 machine: str | None = None, schema: Any = None,
                 rate_limit: dict[str, Any] | None = None, isolated: bool = False,
                 hooks: dict[str, Hook | None] | None = None) -> None:
        if not isinstance(id, str) or not id.strip():
            raise ValidationError("A task needs a non-empty string id")
        if (problem := name_problem(id)) is not None:
            raise ValidationError(f"Task {id[:100]!r}: its id {problem}")
        if not callable(fn):
            raise ValidationError(f"Task {id!r}: the decorated object is not callable")
        if machine is not None:
            check_machine(machine, f"machine of task {id!r}")
        self.id, self.fn, self.schema, self.machine = id, fn, schema, machine
        try:
            self.queue = Queue(queue) if isinstance(queue, str) else queue
            self.retry = Retry.coerce(retry)
        except ValidationError as exc:
            raise ValidationError(f"Task {id!r}: {exc.message}") from None
        self.max_duration_s = (parse_duration(max_duration, what="max_duration")
                               if max_duration is not None else None)
        self.is_async = inspect.iscoroutinefunction(fn)
        #: one run per task process; otherwise an async task's runs share processes
        self.isolated = bool(isolated)
        self.takes_ctx = _takes_ctx(fn)
        self.file = (inspect.getsourcefile(fn) or "") if inspect.isfunction(fn) else ""
        self.export_name = getattr(fn, "__name__", id)
        #: extra manifest fields (e.g. a schedule) added by other task kinds
        self.manifest_extra: dict[str, Any] = {}
        # a task's own rate limit, else its shared queue's, limits starts on the task's queue
        limit = parse_rate_limit(rate_limit) or (self.queue.rate_limit if self.queue else None)
        if limit is not None:
            self.manifest_extra["rate_limit"] = limit
        #: the task's own hooks (docs/hooks.md): one per kind, a second one replaces the first
        self.hooks = HookSet()
        for kind, hook in (hooks or {}).items():
            if hook is not None:
                self.add_hook(kind, hook)

    def add_hook(self, kind: str, fn: Hook) -> Hook:
        """Set the task's `kind` hook (`middleware`, `on_start`, …); returns `fn`."""
        kind = ALIASES.get(kind, kind)
        try:
            return self.hooks.add(kind, fn, name=f"task:{kind}")
        except ValidationError as exc:
            raise ValidationError(f"Task {self.id!r}: {exc.message}") from None

    # decorators: `@my_task.on_success` sets the task's hook
    def middleware(self, fn: Hook) -> Hook:
        return self.add_hook("middleware", fn)

    def init(self, fn: Hook) -> Hook:
        return self.add_hook("init", fn)

    def on_start(self, fn: Hook) -> Hook:
        return self.add_hook("on_start", fn)

    def on_start_attempt(self, fn: Hook) -> Hook:
        return self.add_hook("on_start_attempt", fn)

    def on_success(self, fn: Hook) -> Hook:
        return self.add_hook("on_success", fn)

    def on_failure(self, fn: Hook) -> Hook:
        return self.add_hook("on_failure", fn)

    def on_complete(self, fn: Hook) -> Hook:
        return self.add_hook("on_complete", fn)

    def cleanup(self, fn: Hook) -> Hook:
        return self.add_hook("cleanup", fn)

    def catch_error(self, fn: Hook) -> Hook:
        return self.add_hook("catch_error", fn)

    def on_wait(self, fn: Hook) -> Hook:
        return self.add_hook("on_wait", fn)

    def on_resume(self, fn: Hook) -> Hook:
        return self.add_hook("on_resume", fn)

    def on_cancel(self, fn: Hook) -> Hook:
        return self.add_hook("on_cancel", fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<Task {self.id!r}>"

    def parse_payload(self, value: Any) -> Any:
        """The payload the function receives: validated into `schema` for a schema_task
        (raises pydantic's ValidationError), else as decoded."""
        return self.schema.model_validate(value) if self.schema is not None else value

    def manifest(self) -> dict[str, Any]:
        """The TaskManifest of docs/worker-protocol.md (`file` as defined; the indexer makes it
        relative)."""
        q = self.queue
        return {"id": self.id, "queue": q.name if q else f"task/{self.id}",
                "queue_concurrency_limit": q.concurrency_limit if q else None,
                "queue_is_custom": q is not None,
                "retry": self.retry.to_dict() if self.retry else None,
                "max_duration_s": self.max_duration_s, "machine": self.machine,
                "schema": self.schema.model_json_schema() if self.schema is not None else None,
                "file": self.file, "export_name": self.export_name,
                # runs may share a task process: async and not isolated (sync code blocks a
                # thread, and CRIU freezes a whole process: those keep one run per process)
                "shared": self.is_async and not self.isolated, **self.manifest_extra}

    # -- triggering -----------------------------------------------------------------------
    async def trigger(self, payload: Any = None, **options: Any) -> RunHandle:
        return await tasks.trigger(self.id, payload, **options)

    async def trigger_and_wait(self, payload: Any = None, **options: Any) -> TaskRunResult:
        return await tasks.trigger_and_wait(self.id, payload, **options)

    async def batch_trigger(self, items: list[Any]) -> BatchHandle:
        return await tasks.batch_trigger(self.id, items)

    async def batch_trigger_and_wait(self, items: list[Any]) -> list[TaskRunResult]:
        return await tasks.batch_trigger_and_wait(self.id, items)

    def trigger_sync(self, payload: Any = None, **options: Any) -> RunHandle:
        return tasks.trigger_sync(self.id, payload, **options)

    def trigger_and_wait_sync(self, payload: Any = None, **options: Any) -> TaskRunResult:
        return tasks.trigger_and_wait_sync(self.id, payload, **options)

    def batch_trigger_sync(self, items: list[Any]) -> BatchHandle:
        return tasks.batch_trigger_sync(self.id, items)

    def batch_trigger_and_wait_sync(self, items: list[Any]) -> list[TaskRunResult]:
        return tasks.batch_trigger_and_wait_sync(self.id, items)


def _takes_ctx(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


# -- triggering by id ------------------------------------------------------------------------
def _item(task_id: str, payload: Any, options: dict[str, Any]) -> dict[str, Any]:
    data, data_type = packets.encode(payload)
    return {"task": task_id, "payload": data, "payloadType": data_type,
            "options": trigger_options(options)}


def _batch_items(task_id: str, items: list[Any]) -> list[dict[str, Any]]:
    # a dict with only "payload" (and "options") is the item form; anything else is a payload
    out = []
    for item in items:
        if isinstance(item, dict) and "payload" in item and set(item) <= {"payload", "options"}:
            out.append(_item(task_id, item["payload"], dict(item.get("options") or {})))
        else:
            out.append(_item(task_id, item, {}))
    return out


def _locked(item: dict[str, Any], version: str | None) -> dict[str, Any]:
    """A child its parent waits for runs on the parent's version (`lockToVersion`), as
    Trigger.dev's SDK sends it for triggerAndWait and batchTriggerAndWait: the parent's code
    waits for a result of the code it was written with, whatever was registered since."""
    if version:
        item["options"].setdefault("lockToVersion", version)
    return item


def _batch_handle(answer: dict[str, Any]) -> BatchHandle:
    runs = [r["id"] if isinstance(r, dict) else str(r) for r in answer.get("runs", [])]
    return BatchHandle(batch_id=answer.get("batchId") or answer.get("id", ""), runs=runs)


def _waitpoint(answer: dict[str, Any]) -> str:
    wp = answer.get("waitpointId")
    if not wp:
        raise RuntimeError(f"The daemon answered a waiting trigger without a waitpoint: {answer}")
    return str(wp)


def _recorded(record: dict[str, Any]) -> dict[str, Any]:
    """A completed wait record's WaitResult (sdk/replay.py)."""
    result = packets.decode(record.get("result"), record.get("resultType"))
    return result if isinstance(result, dict) else {}


def _handle(answer: dict[str, Any]) -> RunHandle:
    return RunHandle(id=answer["id"], is_cached=bool(answer.get("isCached")))


def _global(kind: str, name_or_fn: str | Hook, fn: Hook | None) -> Hook:
    # `tasks.on_start(fn)` or `tasks.on_start("name", fn)`; usable as a decorator too
    if isinstance(name_or_fn, str):
        if fn is None:
            raise ValidationError(f"tasks.{kind}({name_or_fn!r}, fn): the function is missing")
        return GLOBAL.add(kind, fn, name=name_or_fn)
    return GLOBAL.add(kind, name_or_fn)


class GlobalHooks:
    """`tasks.on_start(fn)` and friends: hooks for every task of the project (docs/hooks.md).
    Register them in a module of the trigger dirs; they run in registration order, before the
    task's own hooks (catch_error: after)."""

    def middleware(self, name_or_fn: str | Hook, fn: Hook | None = None) -> Hook:
        return _global("middleware", name_or_fn, fn)

    def on_start(self, name_or_fn: str | Hook, fn: Hook | None = None) -> Hook:
        return _global("on_start", name_or_fn, fn)

    def on_start_attempt(self, name_or_fn: str | Hook, fn: Hook | None = None) -> Hook:
        return _global("on_start_attempt", name_or_fn, fn)

    def on_success(self, name_or_fn: str | Hook, fn: Hook | None = None) -> Hook:
        return _global("on_success", name_or_fn, fn)

    def on_failure(self, name_or_fn: str | Hook, fn: Hook | None = None) -> Hook:
        return _global("on_failure", name_or_fn, fn)

    def on_complete(self, name_or_fn: str | Hook, fn: Hook | None = None) -> Hook:
        return _global("on_complete", name_or_fn, fn)

    def catch_error(self, name_or_fn: str | Hook, fn: Hook | None = None) -> Hook:
        return _global("catch_error", name_or_fn, fn)

    def on_wait(self, name_or_fn: str | Hook, fn: Hook | None = None) -> Hook:
        return _global("on_wait", name_or_fn, fn)

    def on_resume(self, name_or_fn: str | Hook, fn: Hook | None = None) -> Hook:
        return _global("on_resume", name_or_fn, fn)

    def on_cancel(self, name_or_fn: str | Hook, fn: Hook | None = None) -> Hook:
        return _global("on_cancel", name_or_fn, fn)


class Tasks(GlobalHooks):
    """The `tasks` namespace: trigger a task by its id (no import of the task's module needed),
    and register global hooks (`GlobalHooks`)."""

    async def trigger(self, task_id: str, payload: Any = None, **options: Any) -> RunHandle:
        item = _item(task_id, payload, options)
        state = current_run()
        if state is not None:  # a durable call: a replay gets the same child, never a second
            call, record = state.replay.take("trigger", task_id)
            if completed(record) and record and record.get("childRunId"):
                state.from_record(call)
                return RunHandle(id=str(record["childRunId"]), is_cached=True)
            return _handle(await state.run_call(protocol.TRIGGER, {
                **item, "wait": False, "record": replay_body(call)}))
        from .client import get_client

        return _handle(await get_client().trigger(task_id, item["payload"], item["payloadType"],
                                                  item["options"]))

    async def trigger_and_wait(self, task_id: str, payload: Any = None,
                               **options: Any) -> TaskRunResult:
        state = require_run("trigger_and_wait")
        call, record = state.replay.take("trigger_and_wait", task_id)
        if completed(record) and record and record.get("childRunId"):
            state.from_record(call)
            return TaskRunResult.from_wait(str(record["childRunId"]), _recorded(record))
        # a pending record: the daemon answers with the same child and waitpoint
        item = _locked(_item(task_id, payload, options), state.ctx.version)
        answer = await state.run_call(protocol.TRIGGER, {**item, "wait": True,
                                                         "record": replay_body(call)})
        result = await wait_on(state, {"kind": "run", "waitpointId": _waitpoint(answer)})
        return TaskRunResult.from_wait(answer["id"], result)

    async def batch_trigger(self, task_id: str, items: list[Any]) -> BatchHandle:
        body = _batch_items(task_id, items)
        state = current_run()
        if state is not None:  # always asked: the daemon has the batch's runs
            call, record = state.replay.take("batch", task_id)
            if record is not None:
                state.from_record(call)
            return _batch_handle(await state.run_call(protocol.BATCH, {
                "items": body, "wait": False, "record": replay_body(call)}))
        from .client import get_client

        return _batch_handle(await get_client().batch_trigger(body))

    async def batch_trigger_and_wait(self, task_id: str, items: list[Any]) -> list[TaskRunResult]:
        state = require_run("batch_trigger_and_wait")
        call, record = state.replay.take("batch_and_wait", task_id)
        if completed(record) and record:
            state.from_record(call)
            return TaskRunResult.list_from_batch(_recorded(record))
        body = [_locked(item, state.ctx.version) for item in _batch_items(task_id, items)]
        answer = await state.run_call(protocol.BATCH, {"items": body, "wait": True,
                                                       "record": replay_body(call)})
        result = await wait_on(state, {"kind": "batch", "waitpointId": _waitpoint(answer)})
        return TaskRunResult.list_from_batch(result)

    def trigger_sync(self, task_id: str, payload: Any = None, **options: Any) -> RunHandle:
        state = current_run()
        if state is not None:
            return state.block_on(self.trigger(task_id, payload, **options))
        from .client import get_sync_client

        item = _item(task_id, payload, options)
        return _handle(get_sync_client().trigger(task_id, item["payload"], item["payloadType"],
                                                 item["options"]))

    def trigger_and_wait_sync(self, task_id: str, payload: Any = None,
                              **options: Any) -> TaskRunResult:
        state = require_run("trigger_and_wait_sync")
        return state.block_on(self.trigger_and_wait(task_id, payload, **options))

    def batch_trigger_sync(self, task_id: str, items: list[Any]) -> BatchHandle:
        state = current_run()
        if state is not None:
            return state.block_on(self.batch_trigger(task_id, items))
        from .client import get_sync_client

        return _batch_handle(get_sync_client().batch_trigger(_batch_items(task_id, items)))

    def batch_trigger_and_wait_sync(self, task_id: str, items: list[Any]) -> list[TaskRunResult]:
        state = require_run("batch_trigger_and_wait_sync")
        return state.block_on(self.batch_trigger_and_wait(task_id, items))


tasks = Tasks()
