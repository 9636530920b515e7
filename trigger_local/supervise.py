"""Supervision of the daemon's background work: no loop dies quietly.

A *loop* is a `step` coroutine the supervisor calls over and over (the dispatcher's round with
its timers, the docker engine check). An exception from one step is reported and the loop goes
on after a capped exponential back-off (0.1 s doubling to 5 s), so one bad round never ends the
work for good. Reporting may fail too (a full disk fails the log write as well): `report` never
raises, it falls back to a bare write to fd 2 and then drops the line.

A loop gives up only when it failed `failure_limit` times in a row for a reason other than a
full disk (a full disk is waited out: the loop backs off and tries again until there is space),
or when its task ends without being asked to. Either is *fatal*: `on_fatal(reason)` is called
once, and the daemon stops in order and exits 1 with that reason on one line, instead of
answering /healthz while nothing runs.

A *job* is a one-shot task (a process monitor, a checkpoint clean-up): `spawn` keeps a reference
and reports its failure instead of leaving it to "Task exception was never retrieved".
`retry_until_done` is for the idempotent store writes such a job must not lose (a process that
exited must have its run released even if the disk was full at that moment).

`health()` is what /healthz shows (docs/configuration.md).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import structlog

from .disk import disk_full_error

log = structlog.get_logger("supervise")

T = TypeVar("T")
BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
DEFAULT_FAILURE_LIMIT = 20


def backoff_s(failures: int) -> float:
    """How long to wait after the `failures`-th failure in a row."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2.0 ** min(max(0, failures - 1), 16))


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def report(level: str, event: str, **fields: Any) -> None:
    """Log, and never raise: the error being reported may be the reason logging fails."""
    try:
        getattr(log, level)(event, **fields)
    except Exception:  # noqa: BLE001 - a log line is not worth a second failure
        try:
            extra = " ".join(f"{k}={v!r}" for k, v in fields.items() if k != "exc_info")
            os.write(2, f"{level}: {event} {extra}\n".encode(errors="replace"))
        except Exception:  # noqa: BLE001
            pass


class Loop:
    """One supervised loop; see the module docstring."""

    def __init__(self, supervisor: Supervisor, name: str, step: Callable[[], Awaitable[object]],
                 on_stop: Callable[[], None] | None) -> None:
        self.supervisor, self.name, self._step, self._on_stop = supervisor, name, step, on_stop
        self.failures = 0  # in a row, any cause
        self.counted = 0  # in a row, not counting a full disk
        self.error: str | None = None
        self.failing_since: float | None = None
        self._stopping = False
        self._gave_up = False
        self._resume = asyncio.Event()  # cuts a back-off short at stop
        self.task = asyncio.create_task(self._run(), name=f"loop:{name}")
        self.task.add_done_callback(self._ended)

    @property
    def running(self) -> bool:
        return not self.task.done()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._step()
            except Exception as exc:  # noqa: BLE001 - the point: one bad round is not the end
                if not self._failed(exc):
                    return
                try:
                    await asyncio.wait_for(self._resume.wait(), backoff_s(self.failures))
                except TimeoutError:
                    pass
            else:
                if self.failures:
                    report("info", "loop recovered", loop=self.name, after_failures=self.failures)
                    self.failures = self.counted = 0
                    self.error = self.failing_since = None

    def _failed(self, exc: Exception) -> bool:
        """Record a failure; False when the loop must give up."""
        self.failures += 1
        self.failing_since = self.failing_since or time.time()
        full = disk_full_error(exc, self.supervisor.home) if self.supervisor.home else None
        self.error = full.message if full else describe(exc)
        if full:  # waited out, whatever it takes: the loop cannot do anything about it
            report("warning", "loop waits for disk space", loop=self.name, failures=self.failures,
                   error=self.error)
            return True
        self.counted += 1
        if self.counted >= self.supervisor.failure_limit:
            self._gave_up = True
            self.supervisor.fatal(f"the {self.name} loop failed {self.counted} times in a row "
                                  f"(last: {self.error})")
            return False
        if self.counted == 1:  # the traceback once per streak; then one line each
            report("error", "loop round failed", loop=self.name, exc_info=exc)
        else:
            report("warning", "loop round failed again", loop=self.name, failures=self.counted,
                   error=self.error)
        return True

    def _ended(self, task: asyncio.Task[None]) -> None:
        if self._stopping or self._gave_up:
            return
        if task.cancelled():
            how = "was cancelled"
        elif (exc := task.exception()) is not None:
            how = f"crashed ({describe(exc)})"
        else:
            how = "returned"
        self.supervisor.fatal(f"the {self.name} loop {how} while the daemon was running")

    def cancel(self) -> None:
        """Stop now (the task is cancelled wherever it is)."""
        self._stopping = True
        self.task.cancel()

    async def stop(self, timeout_s: float) -> None:
        """Let the current round finish (up to `timeout_s`), then end the loop."""
        self._stopping = True
        self._resume.set()
        if self._on_stop is not None:
            self._on_stop()
        done, _ = await asyncio.wait([self.task], timeout=timeout_s)
        if not done:
            self.task.cancel()
            await asyncio.wait([self.task], timeout=1.0)

    def health(self) -> dict[str, Any]:
        return {"running": self.running, "failing": self.failures > 0, "failures": self.failures,
                "error": self.error, "failing_since": self.failing_since}


class Supervisor:
    """Starts the daemon's loops and jobs, and knows whether they are healthy."""

    def __init__(self, failure_limit: int = DEFAULT_FAILURE_LIMIT,
                 home: Path | None = None) -> None:
        self.failure_limit = max(1, failure_limit)
        self.home = home  # whose disk a full-disk error is about
        self.loops: dict[str, Loop] = {}
        self.fatal_reason: str | None = None
        self.on_fatal: Callable[[str], None] | None = None
        self._jobs: set[asyncio.Task[Any]] = set()

    def start(self, name: str, step: Callable[[], Awaitable[object]], *,
              on_stop: Callable[[], None] | None = None) -> Loop:
        """Run `step` over and over until `stop`. A step that sleeps should end its sleep when
        `on_stop` is called (else `stop` cancels it after its timeout)."""
        loop = Loop(self, name, step, on_stop)
        self.loops[name] = loop
        return loop

    async def stop(self, name: str, timeout_s: float) -> None:
        loop = self.loops.get(name)
        if loop is not None:
            await loop.stop(timeout_s)

    async def stop_all(self, timeout_s: float) -> None:
        await asyncio.gather(*(loop.stop(timeout_s) for loop in self.loops.values()))

    def spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A one-shot job whose failure is reported, not lost."""
        task = asyncio.create_task(coro, name=f"job:{name}")
        self._jobs.add(task)
        task.add_done_callback(lambda t: self._job_done(name, t))
        return task

    def _job_done(self, name: str, task: asyncio.Task[Any]) -> None:
        self._jobs.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            report("error", "background job failed", job=name, exc_info=exc)

    async def retry_until_done(self, what: str, fn: Callable[[], Awaitable[T]],
                               give_up: Callable[[], bool] = lambda: False) -> T | None:
        """Await `fn()` (idempotent) until it succeeds, backing off between tries. A full disk is
        waited out; another error `failure_limit` times in a row is fatal. None when `give_up()`
        said to stop trying (the daemon is shutting down) or the failure was fatal."""
        failures = counted = 0
        while True:
            try:
                return await fn()
            except Exception as exc:  # noqa: BLE001 - retried: this write must not be lost
                failures += 1
                full = disk_full_error(exc, self.home) if self.home else None
                counted += full is None
                if counted >= self.failure_limit:
                    self.fatal(f"{what} failed {counted} times in a row (last: {describe(exc)})")
                    return None
                report("warning", "retrying", what=what, failures=failures,
                       error=full.message if full else describe(exc))
            if give_up():
                return None
            await asyncio.sleep(backoff_s(failures))

    def fatal(self, reason: str) -> None:
        """The daemon cannot go on: say so once, loudly, and ask it to stop."""
        if self.fatal_reason is not None:
            return
        self.fatal_reason = reason
        report("critical", "stopping the daemon", reason=reason)
        if self.on_fatal is not None:
            self.on_fatal(reason)

    def health(self) -> dict[str, Any]:
        """{"ok": every loop runs and none is failing, "loops": {name: state}}."""
        loops = {name: loop.health() for name, loop in self.loops.items()}
        ok = self.fatal_reason is None \
            and all(s["running"] and not s["failing"] for s in loops.values())
        out: dict[str, Any] = {"ok": ok, "loops": loops}
        if self.fatal_reason:
            out["fatal"] = self.fatal_reason
        return out
