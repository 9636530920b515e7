"""The storage interface, part 4: the daemon's own bookkeeping — its task processes, the
checkpoints of waiting runs, the request-key cache and a small key/value table. The contract of
store/run_areas.py holds here too."""

from __future__ import annotations

from typing import Any, Protocol

from .models import Checkpoint, Worker


class WorkerReader(Protocol):
    async def all(self) -> list[Worker]:
        """Every task process a daemon started and has not forgotten (it may be gone)."""
        ...


class WorkerStore(WorkerReader, Protocol):
    async def upsert(self, worker: Worker) -> None: ...

    async def delete(self, worker_id: str) -> None: ...


class CheckpointReader(Protocol):
    async def get(self, checkpoint_id: str) -> Checkpoint | None: ...

    async def for_run(self, run_id: str) -> list[Checkpoint]:
        """The run's checkpoints, oldest first (its history: restored and failed ones too)."""
        ...

    async def active(self) -> list[Checkpoint]:
        """Every checkpoint whose images may still be restored, oldest first."""
        ...

    async def pending(self) -> list[Checkpoint]:
        """Dumps under way when a daemon died: the next daemon finishes or undoes each."""
        ...


class CheckpointStore(CheckpointReader, Protocol):
    async def insert(self, checkpoint: Checkpoint) -> None: ...

    async def update(self, checkpoint_id: str, expected_status: str | None = None,
                     **changes: Any) -> bool:
        """Apply `changes`; with `expected_status`, only if the row still has it. False:
        nothing changed. Raises ValueError for a field `Checkpoint` does not have."""
        ...

    async def delete(self, checkpoint_id: str, expected_status: str) -> bool:
        """Delete the row if it still has `expected_status`."""
        ...


class RequestReader(Protocol):
    """Answers to requests that carried a request idempotency key, by key."""

    async def get(self, key: str, since: float) -> dict[str, Any] | None:
        """The answer recorded for `key` at or after `since`, or None."""
        ...


class RequestStore(RequestReader, Protocol):
    async def put(self, key: str, at: float, answer: dict[str, Any]) -> None:
        """Record (or replace) the answer to `key`."""
        ...

    async def prune(self, before: float, limit: int) -> int:
        """Forget up to `limit` answers recorded before `before`, the oldest first; how many."""
        ...


class KvReader(Protocol):
    async def get(self, key: str) -> str | None: ...


class KvStore(KvReader, Protocol):
    async def set(self, key: str, value: str) -> None: ...
