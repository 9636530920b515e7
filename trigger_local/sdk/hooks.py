"""Lifecycle hooks and middleware (Trigger.dev v4's names, Python spelling; docs/hooks.md).

A task's hooks are options of `@task(...)` or decorators on the task (`@my_task.on_start`);
global hooks are registered in a trigger file with `tasks.on_start(fn)` and run for every task,
before the task's own (except `catch_error`: the task's first). Each hook is called with the
keyword arguments it declares (`payload`, `ctx`, `output`, `error`, `result`, `wait`, `init`,
`task`), so `def on_success(payload, output): ...` and `def on_success(**kw): ...` both work;
sync hooks run in a thread, as sync tasks do.

`locals` is a per-attempt store shared by the middleware, the hooks and the task: it lives on
the attempt's `RunState`, so concurrent runs in one process never see each other's values.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from ..errors import ValidationError
from .context import current_run, require_run
from .logger import Span
from .retry import Retry

T = TypeVar("T")

#: every hook kind, in the order they run in an attempt (middleware wraps them all)
KINDS = ("middleware", "init", "on_start", "on_start_attempt", "on_success", "on_failure",
         "on_complete", "cleanup", "catch_error", "on_wait", "on_resume", "on_cancel")
#: kinds that can be registered globally (`tasks.<kind>(fn)`); as in Trigger.dev, no init/cleanup
GLOBAL_KINDS = tuple(k for k in KINDS if k not in ("init", "cleanup"))
ALIASES = {"handle_error": "catch_error"}

Hook = Callable[..., Any]


class HookSet:
    """Hooks by kind, each kind an ordered map of name → function. Registering a name again
    replaces the function and keeps its place (Trigger.dev's rule for global hooks)."""

    def __init__(self) -> None:
        self._hooks: dict[str, dict[str, Hook]] = {k: {} for k in KINDS}

    def add(self, kind: str, fn: Hook, name: str | None = None) -> Hook:
        kind = ALIASES.get(kind, kind)
        if kind not in self._hooks:
            raise ValidationError(f"Unknown hook {kind!r}: use one of {', '.join(KINDS)}")
        if not callable(fn):
            raise ValidationError(f"The {kind} hook must be a function, got {fn!r}")
        self._hooks[kind][name or _name(fn)] = fn
        return fn

    def of(self, kind: str) -> list[tuple[str, Hook]]:
        return list(self._hooks[kind].items())

    def clear(self) -> None:
        for hooks in self._hooks.values():
            hooks.clear()


def _name(fn: Hook) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


#: hooks registered with `tasks.on_start(...)` and friends: every task of the process
GLOBAL = HookSet()


# -- calling hooks ----------------------------------------------------------------------------
def _accepts(fn: Hook, args: dict[str, Any]) -> dict[str, Any]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return args
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return args
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return {k: v for k, v in args.items() if k in names}


async def call_hook(fn: Hook, args: dict[str, Any]) -> Any:
    """Call one hook with the arguments it declares; awaits it if it is async."""
    kwargs = _accepts(fn, args)
    if inspect.iscoroutinefunction(fn):
        return await fn(**kwargs)
    result = await asyncio.to_thread(fn, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


async def run_hooks(hooks: list[tuple[str, Hook]], kind: str, args: dict[str, Any], *,
                    swallow: bool) -> list[Any]:
    """Run hooks in order, each in a span `hook <kind>` of the run's trace. `swallow`: an
    exception is recorded on its span and ignored (on_success, on_wait, …); otherwise it
    propagates and the hooks after it do not run (on_start fails the attempt)."""
    results = []
    for name, fn in hooks:
        try:
            with Span(f"hook {kind}", {"hook": kind, "name": name}):
                results.append(await call_hook(fn, args))
        except Exception:
            if not swallow:
                raise
    return results


# -- catch_error ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    """What `catch_error` decided: retry (`retry`, with `delay_s` or the task's policy when
    None), and the error to report (`error`, None for the original one)."""

    retry: bool
    delay_s: float | None = None
    error: BaseException | None = None


def decision_from(value: Any, attempt: int, default_retry: bool) -> Decision | None:
    """Read a catch_error result: None/falsy means "use the default" (None back); a dict with
    `skip_retrying`, `retry_at`, `retry_delay_in_ms`, `retry` (a Retry or its dict) and/or
    `error` (an exception to report instead)."""
    if not value:
        return None
    if not isinstance(value, dict):
        raise ValidationError("catch_error must return None or a dict with skip_retrying, "
                              f"retry_at, retry_delay_in_ms, retry or error; got {value!r}")
    error = value.get("error")
    if error is not None and not isinstance(error, BaseException):
        error = RuntimeError(str(error))
    if value.get("skip_retrying"):
        return Decision(False, None, error)
    if value.get("retry_at") is not None:
        at = value["retry_at"]
        if not isinstance(at, datetime):
            raise ValidationError(f"catch_error retry_at must be a datetime, got {at!r}")
        return Decision(True, max(0.0, at.timestamp() - time.time()), error)
    if value.get("retry_delay_in_ms") is not None:
        return Decision(True, max(0.0, float(value["retry_delay_in_ms"]) / 1000), error)
    if value.get("retry") is not None:
        options = Retry.coerce(value["retry"])
        assert options is not None
        if attempt >= options.max_attempts:
            return Decision(False, None, error)
        delay = options.min_timeout_s * options.factor ** max(0, attempt - 1)
        return Decision(True, min(delay, options.max_timeout_s), error)
    # `{"error": e}` alone: report e, and do not retry (Trigger.dev's "noop")
    return Decision(False, None, error) if error is not None else None


# -- locals -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LocalKey(Generic[T]):
    """A slot in the attempt's `locals`; the same id always names the same slot."""

    id: str
    _type: tuple[()] = field(default=(), repr=False, compare=False)


class Locals:
    """`locals.create(id)` → key; `get(key)`, `get_or_throw(key)`, `set(key, value)` on the
    current attempt's store (cleared before every attempt)."""

    def create(self, id: str) -> LocalKey[Any]:
        if not isinstance(id, str) or not id:
            raise ValidationError("locals.create needs a non-empty string id")
        return LocalKey(id)

    def get(self, key: LocalKey[T]) -> T | None:
        state = current_run()
        return None if state is None else state.locals.get(key.id)

    def get_or_throw(self, key: LocalKey[T]) -> T:
        value = self.get(key)
        if not value:
            raise KeyError(f"Local with id {key.id} not found")
        return value

    def set(self, key: LocalKey[T], value: T) -> T:
        require_run("locals.set").locals[key.id] = value
        return value


locals = Locals()  # noqa: A001 - Trigger.dev's name
