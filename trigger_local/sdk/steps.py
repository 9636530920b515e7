"""`step`: a piece of a task whose result is recorded, so a replayed attempt (docs/durability.md)
gets the result back without running it again — wrap side effects in one.

    result = await step.run("charge-card", charge, order_id, retry=Retry(max_attempts=3))

    @step("download", retry={"max_attempts": 5})
    async def download(url: str) -> bytes: ...

A step's own retries happen in the process, with the backoff of its `retry` (none by default);
a step that still fails raises into the task, whose retry policy decides about the attempt. Only
completed steps are remembered: a failed step runs again in the next attempt. Sync tasks use
`step.run_sync`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import random
import time
from collections.abc import Callable
from typing import Any

from .. import packets
from ..durable_calls import COMPLETED, FAILED
from .context import require_run
from .replay import completed
from .retry import Retry

ONCE = Retry(max_attempts=1)


def _policy(retry: Retry | dict[str, Any] | None) -> Retry:
    return Retry.coerce(retry) or ONCE


def _delay_s(policy: Retry, tried: int) -> float:
    base = policy.min_timeout_s * (policy.factor ** max(0, tried - 1))
    if policy.randomize:
        base *= 1 + random.random()
    return max(0.0, min(base, policy.max_timeout_s))


def _recorded(record: dict[str, Any]) -> Any:
    return packets.decode(record.get("result"), record.get("resultType"))


class Step:
    """The `step` object: `run`, `run_sync`, and the decorator form `@step(name)`."""

    async def run(self, name: str, fn: Callable[..., Any], *args: Any,
                  retry: Retry | dict[str, Any] | None = None, **kwargs: Any) -> Any:
        state = require_run("step.run")
        call, record = state.replay.take("step", str(name))
        if completed(record) and record:
            state.from_record(call)
            return _recorded(record)
        policy = _policy(retry)
        for tried in range(1, policy.max_attempts + 1):
            try:
                result = fn(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                if tried >= policy.max_attempts:
                    await state.save_record(call, FAILED)
                    raise
                await asyncio.sleep(_delay_s(policy, tried))
            else:
                await state.save_record(call, COMPLETED, result)
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def run_sync(self, name: str, fn: Callable[..., Any], *args: Any,
                 retry: Retry | dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """`run` for sync tasks: `fn` runs in the calling thread."""
        state = require_run("step.run_sync")
        call, record = state.replay.take("step", str(name))
        if completed(record) and record:
            state.from_record(call)
            return _recorded(record)
        policy = _policy(retry)
        for tried in range(1, policy.max_attempts + 1):
            try:
                result = fn(*args, **kwargs)
            except Exception:
                if tried >= policy.max_attempts:
                    state.block_on(state.save_record(call, FAILED))
                    raise
                time.sleep(_delay_s(policy, tried))
            else:
                state.block_on(state.save_record(call, COMPLETED, result))
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def __call__(self, name: str, *, retry: Retry | dict[str, Any] | None = None
                 ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """`@step("name")`: each call of the function is a step of that name."""
        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            if inspect.iscoroutinefunction(fn):
                @functools.wraps(fn)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    return await self.run(name, fn, *args, retry=retry, **kwargs)
                return run_async

            @functools.wraps(fn)
            def run_blocking(*args: Any, **kwargs: Any) -> Any:
                return self.run_sync(name, fn, *args, retry=retry, **kwargs)
            return run_blocking
        return decorate


step = Step()
