"""The storage interface, part 2: waitpoints (with the edges that block runs on them) and
batches. The contract of store/run_areas.py holds here too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .models import Batch, Waitpoint


class WaitpointReader(Protocol):
    async def get(self, waitpoint_id: str) -> Waitpoint | None: ...

    async def find_by_key(self, type_: str, key: str, now: float,
                          project: str | None = None) -> Waitpoint | None:
        """The newest waitpoint of `type_` and `project` (None: of no project) with idempotency
        key `key` whose key has not expired at `now`."""
        ...

    async def page(self, *, type_: str, statuses: Sequence[str] | None = None,
                   tags: Sequence[str] | None = None, idempotency_key: str | None = None,
                   created_from: float | None = None, created_to: float | None = None,
                   after: str | None = None, before: str | None = None,
                   limit: int = 25, project: str | None = None) -> list[Waitpoint]:
        """One page of waitpoints of `type_` (and of `project` when given), newest first;
        `after`/`before` are the ids at the edge of the neighbouring page (as
        `RunReader.page`)."""
        ...

    async def blocking(self, run_id: str) -> list[Waitpoint]:
        """The waitpoints `run_id` is blocked on (whatever their status)."""
        ...

    async def pending_count(self, run_id: str) -> int:
        """How many of the waitpoints blocking `run_id` are still WAITING."""
        ...

    async def blocked_runs(self, waitpoint_id: str) -> list[str]:
        """The runs blocked on `waitpoint_id` now."""
        ...

    async def waiting_runs(self, waitpoint_ids: Sequence[str]) -> dict[str, list[str]]:
        """Per waitpoint id: while it is WAITING, the runs blocked on it now (a run canceled
        meanwhile is not); once it is done, the runs that waited on it (from their
        `run.waiting` events, oldest first). Waitpoints no run waits or waited on are left out."""
        ...


class WaitpointStore(WaitpointReader, Protocol):
    async def insert(self, waitpoint: Waitpoint) -> None: ...

    async def update(self, waitpoint_id: str, expected_status: str | None = None,
                     **changes: Any) -> bool:
        """Apply `changes`; with `expected_status`, only if the waitpoint still has it (so two
        completions of one token complete it once). False: nothing changed."""
        ...

    async def block(self, run_id: str, waitpoint_ids: Sequence[str], at: float) -> None:
        """Block `run_id` on each waitpoint (blocking twice on one is one edge)."""
        ...

    async def unblock(self, run_id: str) -> None:
        """Remove every edge blocking `run_id`."""
        ...


class BatchReader(Protocol):
    async def get(self, batch_id: str) -> Batch | None: ...

    async def find_by_key(self, key: str, project: str | None = None) -> Batch | None:
        """The newest batch of `project` (None: of no project) with idempotency key `key`."""
        ...

    async def has_unfinished(self, batch_id: str) -> bool:
        """True while any run of the batch is not final."""
        ...

    async def ended(self, limit: int) -> list[str]:
        """Up to `limit` PROCESSING batches that have all their runs, every one final: batches
        to complete (a store daemons share completes them after the commit that ended their
        last run, engine/endings.py; a daemon killed in between leaves them to this)."""
        ...


class BatchStore(BatchReader, Protocol):
    async def insert(self, batch: Batch) -> None: ...

    async def update(self, batch_id: str, **changes: Any) -> bool: ...
