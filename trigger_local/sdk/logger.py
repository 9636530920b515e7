"""`logger`: structured logs and spans (`logger.trace`) recorded on the run.

Inside a task run, entries are buffered on the run and sent to the daemon in bursts (at most
200 ms old, at most 100 at a time, and always before a wait or the completion); each is also
written through to the process's log spool (log_spool.py), so a crash loses none. In app code
they go to the stdlib `logging` module (logger `trigger_local`), which prints to stderr when
the application configured no logging of its own.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
from types import TracebackType
from typing import Any

from .context import current_run

_span_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "trigger_local_span", default=None)
_std = logging.getLogger("trigger_local")
_STD_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "log": logging.INFO,
               "warn": logging.WARNING, "error": logging.ERROR}


def _std_logger() -> logging.Logger:
    # like logging.lastResort, but for every level, and only if the app set nothing up
    if not _std.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        _std.addHandler(handler)
        _std.setLevel(logging.DEBUG if os.environ.get("TRIGGER_LOCAL_DEBUG") else logging.INFO)
        _std.propagate = False
    return _std


def new_span_id() -> str:
    return os.urandom(8).hex()


def emit(level: str, message: str, attributes: dict[str, Any], *, kind: str = "log",
         span_id: str | None = None, parent_span_id: str | None = None,
         at: float | None = None, ended_at: float | None = None) -> None:
    """Record one entry on the current run, or log it through `logging` outside a run."""
    state = current_run()
    if state is None:
        text = f"{message} {attributes}" if attributes else message
        if kind == "span" and at is not None and ended_at is not None:
            text = f"span {text} ({(ended_at - at) * 1000:.1f} ms)"
        _std_logger().log(_STD_LEVELS.get(level, logging.INFO), text)
        return
    state.add_log({"at": at if at is not None else time.time(), "level": level,
                   "message": str(message), "attributes": attributes, "kind": kind,
                   "spanId": span_id,
                   "parentSpanId": parent_span_id if kind == "span" else _span_var.get(),
                   "endedAt": ended_at})


class Span:
    """A `logger.trace(name)` block, usable with `with` and `async with`. Logs and spans
    inside it name it as their parent; it is recorded once, when it ends, with its start
    (`at`) and end (`endedAt`). An exception inside marks it level "error" and propagates."""

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self.name, self.attributes = name, dict(attributes)
        self.id = new_span_id()
        self.parent_id: str | None = None
        self.started_at = 0.0
        self._token: contextvars.Token[str | None] | None = None

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def __enter__(self) -> Span:
        self.parent_id = _span_var.get()
        self._token = _span_var.set(self.id)
        self.started_at = time.time()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        ended = time.time()
        if self._token is not None:
            _span_var.reset(self._token)
        level = "info"
        if exc is not None and isinstance(exc, Exception):
            level = "error"
            self.attributes["error"] = f"{type(exc).__name__}: {exc}"
        emit(level, self.name, self.attributes, kind="span", span_id=self.id,
             parent_span_id=self.parent_id, at=self.started_at, ended_at=ended)

    async def __aenter__(self) -> Span:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)


class Logger:
    """The `logger` object: `debug/info/log/warn/warning/error(message, **attributes)` and
    `trace(name, **attributes)`."""

    def debug(self, message: str, **attributes: Any) -> None:
        emit("debug", message, attributes)

    def info(self, message: str, **attributes: Any) -> None:
        emit("info", message, attributes)

    def log(self, message: str, **attributes: Any) -> None:
        emit("log", message, attributes)

    def warn(self, message: str, **attributes: Any) -> None:
        emit("warn", message, attributes)

    warning = warn

    def error(self, message: str, **attributes: Any) -> None:
        emit("error", message, attributes)

    def trace(self, name: str, **attributes: Any) -> Span:
        return Span(name, attributes)


logger = Logger()
