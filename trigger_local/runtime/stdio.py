"""Capturing a task's `print()` output as info logs of its run, while still writing it to the
real stdout (the worker's log file)."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from ..sdk.context import current_run
from ..sdk.logger import emit


class RunOutputTee:
    """A stdout stand-in: writes go to the real stream; during a run, each complete line is
    also recorded as an info log on the run. A partial line is recorded at the end of the run.
    The partial line is the run's own (runs may share the process)."""

    def __init__(self, real: TextIO) -> None:
        self._real = real
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        n = self._real.write(text)
        state = current_run()
        if state is None:
            return n
        with self._lock:
            lines = (state.stdout_partial + text).split("\n")
            state.stdout_partial = lines.pop()
        for line in lines:
            if line:
                emit("info", line, {})
        return n

    def end_run(self) -> None:
        state = current_run()
        if state is None:
            return
        with self._lock:
            rest, state.stdout_partial = state.stdout_partial, ""
        if rest:
            emit("info", rest, {})

    def flush(self) -> None:
        self._real.flush()

    def __getattr__(self, name: str) -> Any:
        # fileno, encoding, isatty, buffer...: whatever code expects of a real stream
        return getattr(self._real, name)


_tee: RunOutputTee | None = None


def install() -> None:
    global _tee
    if _tee is None:
        _tee = RunOutputTee(sys.stdout)
        sys.stdout = _tee


def end_run() -> None:
    if _tee is not None:
        _tee.end_run()
