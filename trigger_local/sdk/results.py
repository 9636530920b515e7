"""What SDK calls return: run and batch handles, child run results, wait results, tokens."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from .. import packets
from ..errors import TaskRunFailedError, WaitTimeoutError


@dataclass(frozen=True, slots=True)
class RunHandle:
    """A triggered run. `is_cached`: an idempotency key matched an existing run.

    `subscribe()` follows its changes (sdk/realtime.py), `result()` waits for its end, and
    `logs()` follows its log lines; each has a `_sync` twin."""

    id: str
    is_cached: bool = False

    def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        from .management import runs

        return aiter(runs.subscribe_to_run(self.id))

    def subscribe_sync(self) -> Iterator[dict[str, Any]]:
        from .management import runs

        return runs.subscribe_to_run_sync(self.id)

    async def result(self) -> TaskRunResult:
        """The run's outcome once it has finished (`.unwrap()` gives its output or raises)."""
        last: dict[str, Any] = {}
        async for run in self.subscribe():
            last = run
        return TaskRunResult.from_run(last)

    def result_sync(self) -> TaskRunResult:
        last: dict[str, Any] = {}
        for run in self.subscribe_sync():
            last = run
        return TaskRunResult.from_run(last)

    def logs(self) -> AsyncIterator[dict[str, Any]]:
        """The run's log lines from its first, live, until it has finished."""
        from .realtime import follow_logs

        return follow_logs(self.id)

    def logs_sync(self) -> Iterator[dict[str, Any]]:
        from .realtime import blocking, follow_logs

        return blocking(follow_logs(self.id))


@dataclass(frozen=True, slots=True)
class BatchHandle:
    """A triggered batch: its id and its run ids, in the order of the items."""

    batch_id: str
    runs: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Token:
    """A waitpoint token. `url` completes it with an unauthenticated POST (HMAC-signed)."""

    id: str
    url: str = ""
    is_cached: bool = False

    @classmethod
    def from_answer(cls, answer: dict[str, Any]) -> Token:
        return cls(id=answer["id"], url=answer.get("url", ""),
                   is_cached=bool(answer.get("isCached")))


@dataclass(frozen=True, slots=True)
class TaskRunResult:
    """A child run's outcome. `output` is decoded; `unwrap()` returns it or raises
    `TaskRunFailedError` carrying the child's error."""

    id: str
    ok: bool
    output: Any = None
    error: dict[str, Any] | None = None

    def unwrap(self) -> Any:
        if self.ok:
            return self.output
        message = (self.error or {}).get("message") or "failed"
        raise TaskRunFailedError(f"Run {self.id} failed: {message}", self.error)

    @classmethod
    def from_run(cls, run: dict[str, Any]) -> TaskRunResult:
        """From a run dict (`runs.retrieve`'s shape) of a finished run."""
        if run.get("status") == "COMPLETED":
            return cls(run["id"], True, run.get("output"))
        return cls(run.get("id", ""), False, None, _error(run.get("error"), run.get("status")))

    @classmethod
    def from_wait(cls, run_id: str, result: dict[str, Any]) -> TaskRunResult:
        if result.get("ok"):
            return cls(run_id, True, packets.decode(result.get("output"), result.get("outputType")))
        return cls(run_id, False, None, _error(result.get("error"), result.get("status")))

    @classmethod
    def list_from_batch(cls, result: dict[str, Any]) -> list[TaskRunResult]:
        """The batch waitpoint's output: a JSON list of {id, ok, output, outputType, error}."""
        items = packets.decode(result.get("output"), result.get("outputType")) or []
        if isinstance(items, str):  # tolerate a doubly-encoded list
            items = json.loads(items)
        return [cls.from_wait(item["id"], item) for item in items]


@dataclass(frozen=True, slots=True)
class WaitResult:
    """A token wait's outcome. `output` is the data the token was completed with;
    `unwrap()` returns it or raises `WaitTimeoutError`."""

    ok: bool
    output: Any = None
    error: dict[str, Any] | None = None
    status: str = "COMPLETED"

    def unwrap(self) -> Any:
        if self.ok:
            return self.output
        raise WaitTimeoutError((self.error or {}).get("message") or "The wait timed out")

    @classmethod
    def from_wait(cls, result: dict[str, Any]) -> WaitResult:
        status = result.get("status") or ("COMPLETED" if result.get("ok") else "TIMED_OUT")
        if result.get("ok"):
            return cls(True, packets.decode(result.get("output"), result.get("outputType")), None,
                       status)
        return cls(False, None, _error(result.get("error"), status), status)


def _error(raw: Any, status: str | None) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = {"message": raw}
    error = dict(raw) if isinstance(raw, dict) else {"message": str(raw or "failed")}
    if status and "status" not in error:
        error["status"] = status
    return error
