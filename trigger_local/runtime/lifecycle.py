"""One attempt with its lifecycle hooks and middleware, in Trigger.dev v4's order
(docs/hooks.md has the table):

    middleware (global in order, then the task's) wrap {
        init → on_start (attempt 1 only) → on_start_attempt → the task function
        success: on_success → on_complete → cleanup
        failure: catch_error (task's first, then global; the first answer wins)
                 → on_failure → on_complete (only when no retry follows) → cleanup
    }

Global hooks run before the task's own. The result is the completion body of
docs/worker-protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import traceback
from datetime import UTC, datetime
from typing import Any

from .. import packets
from ..errors import AbortTaskRunError, NonDeterministicReplayError
from ..sdk.context import Context, RunState
from ..sdk.hooks import GLOBAL, Decision, Hook, call_hook, decision_from, run_hooks
from ..sdk.hooks import _accepts as accepted_args
from ..sdk.logger import Span
from ..sdk.tasks import Task

MIDDLEWARE_ERROR = "TASK_MIDDLEWARE_ERROR"
HANDLE_ERROR_ERROR = "HANDLE_ERROR_ERROR"
CLEANUP_ERROR = "CONFIGURED_INCORRECTLY"


def failure(name: str, message: str, stack: str, *, retry: bool) -> dict[str, Any]:
    return {"ok": False, "error": {"name": name, "message": message, "stack": stack},
            "retry": retry}


#: the frames a sync task's call passes through on its way to a worker thread: plumbing that
#: says nothing about the user's bug
_TO_THREAD = os.path.join("asyncio", "threads.py")
_THREAD_POOL = os.path.join("concurrent", "futures", "")


def _without_plumbing(exc: BaseException) -> str:
    """The traceback, without the frames of asyncio.to_thread and the thread pool, nor this
    module's own (the runtime calling the task: `runs show` printed two of them above the
    task's first line)."""
    top = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    pending: list[traceback.TracebackException | None] = [top]
    while pending:
        part = pending.pop()
        if part is None or id(part) in seen:
            continue
        seen.add(id(part))
        part.stack = traceback.StackSummary.from_list(
            [f for f in part.stack
             if not f.filename.endswith(_TO_THREAD) and _THREAD_POOL not in f.filename
             and f.filename != __file__])
        pending += [part.__cause__, part.__context__]
    return "".join(top.format())


def failure_from(exc: BaseException, *, name: str | None = None) -> dict[str, Any]:
    """The completion of a failed attempt; `name` (a hook's failure kind) is never retried by
    itself."""
    message = str(exc) if name is None else f"{type(exc).__name__}: {exc}"
    retry = name is None and not isinstance(exc, AbortTaskRunError | NonDeterministicReplayError)
    return failure(name or type(exc).__name__, message, _without_plumbing(exc), retry=retry)


class CompleteResult:
    """`on_complete`'s `result`: `ok` with `data` (the output), or not `ok` with `error`."""

    def __init__(self, ok: bool, data: Any = None, error: BaseException | None = None) -> None:
        self.ok, self.data, self.error = ok, data, error

    def __repr__(self) -> str:
        return f"CompleteResult(ok={self.ok}, data={self.data!r}, error={self.error!r})"


async def call_task(task: Task, payload: Any, ctx: Context) -> Any:
    args = (payload, ctx) if task.takes_ctx else (payload,)
    if task.is_async:
        return await task.fn(*args)
    # a thread, so the function may block and call the `_sync` SDK forms
    result = await asyncio.to_thread(task.fn, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


#: the attempts this process runs now, for on_cancel
RUNNING: set[Lifecycle] = set()


async def cancel_all() -> None:
    """The executor said the run was canceled (CANCEL_SIGNAL): run each running attempt's
    on_cancel hooks (errors ignored). The caller then exits the process."""
    for lifecycle in list(RUNNING):
        await lifecycle.run_hooks("on_cancel", swallow=True)


async def cancel_run(run_id: str) -> None:
    """A shared process's run was canceled: its on_cancel hooks (errors ignored), its neighbours
    untouched."""
    for lifecycle in [x for x in RUNNING if x.state.run_id == run_id]:
        await lifecycle.run_hooks("on_cancel", swallow=True)


class Lifecycle:
    """Runs one attempt of `task` with its hooks; kept on the RunState (`state.lifecycle`) so a
    wait can run on_wait / on_resume with the same payload, ctx and init."""

    def __init__(self, task: Task, payload: Any, ctx: Context, state: RunState) -> None:
        self.task, self.payload, self.ctx, self.state = task, payload, ctx, state
        self.init: dict[str, Any] = {}

    def hooks(self, kind: str) -> list[tuple[str, Hook]]:
        mine, shared = self.task.hooks.of(kind), GLOBAL.of(kind)
        return mine + shared if kind == "catch_error" else shared + mine

    async def run_hooks(self, kind: str, *, swallow: bool, **extra: Any) -> list[Any]:
        """The attempt's `kind` hooks, called with its arguments; none registered (most runs):
        nothing is built or called."""
        hooks = self.hooks(kind)
        return await run_hooks(hooks, kind, self.args(**extra), swallow=swallow) if hooks else []

    def args(self, **extra: Any) -> dict[str, Any]:
        return {"payload": self.payload, "ctx": self.ctx, "task": self.task, "init": self.init,
                **extra}

    async def run(self) -> dict[str, Any]:
        """The completion body. A middleware that raises (before or after the attempt)
        replaces the outcome with TASK_MIDDLEWARE_ERROR, retried by the run's policy."""
        RUNNING.add(self)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for name, factory in self.hooks("middleware"):
                    stack.enter_context(Span("hook middleware",
                                             {"hook": "middleware", "name": name}))
                    manager = factory(**accepted_args(factory, self.args()))
                    await stack.enter_async_context(manager)
                body = await self._attempt()
        except Exception as exc:
            return failure_from(exc, name=MIDDLEWARE_ERROR) | {"retry": True}
        finally:
            RUNNING.discard(self)
        return body

    async def _attempt(self) -> dict[str, Any]:
        try:
            for value in await self.run_hooks("init", swallow=False):
                if isinstance(value, dict):
                    self.init.update(value)
            # on_start: the run's first try only (the internal number: a try after an
            # interruption shows attempt 1 again, but on_start already ran)
            if self.state.attempt == 1:
                await self.run_hooks("on_start", swallow=False)
            await self.run_hooks("on_start_attempt", swallow=False)
            output = await call_task(self.task, self.payload, self.ctx)
            data, data_type = packets.encode(output)
        except (Exception, SystemExit) as exc:
            return await self._failed(exc)
        await self.run_hooks("on_success", swallow=True, output=output)
        await self.run_hooks("on_complete", swallow=True, result=CompleteResult(True, data=output))
        return await self._cleanup({"ok": True, "output": data, "outputType": data_type})

    async def _failed(self, exc: BaseException) -> dict[str, Any]:
        body, error = failure_from(exc), exc
        if body["retry"]:  # AbortTaskRunError skips catch_error, as in Trigger.dev
            try:
                decision = await self._catch_error(exc)
            except Exception as hook_exc:
                # as Trigger.dev: reported at once, no on_failure / on_complete, no retry
                return failure_from(hook_exc, name=HANDLE_ERROR_ERROR)
            if decision is not None:
                if decision.error is not None:
                    error, body = decision.error, failure_from(decision.error)
                body["retry"] = decision.retry
                if decision.delay_s is not None:
                    body["retryDelayS"] = round(decision.delay_s, 3)
        if not self._will_retry(body):
            await self.run_hooks("on_failure", swallow=True, error=error)
            await self.run_hooks("on_complete", swallow=True,
                                 result=CompleteResult(False, error=error))
        return await self._cleanup(body)

    async def _catch_error(self, exc: BaseException) -> Decision | None:
        attempt = self.ctx.attempt.number
        for name, fn in self.hooks("catch_error"):
            with Span("hook catch_error", {"hook": "catch_error", "name": name}):
                value = await call_hook(fn, self.args(error=exc))
            decision = decision_from(value, attempt, True)
            if decision is not None:
                return decision
        return None

    def _will_retry(self, body: dict[str, Any]) -> bool:
        most = self.ctx.run.max_attempts
        return bool(body["retry"]) and (most is None or self.ctx.attempt.number < most)

    async def _cleanup(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            await self.run_hooks("cleanup", swallow=False)
        except Exception as exc:
            return failure_from(exc, name=CLEANUP_ERROR)
        return body

    async def around_wait(self, kind: str, body: dict[str, Any]) -> None:
        """on_wait / on_resume around a wait (errors ignored: the wait goes ahead)."""
        await self.run_hooks(kind, swallow=True, wait=wait_info(body))


def wait_info(body: dict[str, Any]) -> dict[str, Any]:
    """The `wait` argument of on_wait / on_resume, from the wait request's body."""
    kind = body.get("kind")
    if kind == "duration":
        until = str(body.get("until"))
        return {"type": "duration", "date": datetime.fromisoformat(until).astimezone(UTC)}
    names = {"token": "token", "run": "task", "batch": "batch"}
    return {"type": names.get(str(kind), str(kind)), "waitpoint_id": body.get("waitpointId")}
