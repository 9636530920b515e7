"""Managing runs and queues from app code: `runs` and `queues`, as in Trigger.dev's SDK.

Every call is async; its blocking twin has the same name with `_sync` (the SDK's one naming
rule), e.g. `await runs.retrieve(id)` / `runs.retrieve_sync(id)`. Answers are plain dicts in
Trigger.dev's JSON shapes (camelCase keys), so its docs read across.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..statuses import FINAL_STATUSES
from .client import get_client, get_sync_client
from .subscriptions import Subscribe

Json = dict[str, Any]



def is_final(run: Json) -> bool:
    return run.get("status") in FINAL_STATUSES


def _poll_timeout(run_id: str, timeout_s: float) -> TimeoutError:
    return TimeoutError(f"Run {run_id} did not finish within {timeout_s:g}s; "
                        "poll again or look at it with `trigger-local runs show`.")


class Runs(Subscribe):
    """`runs.retrieve / list / cancel / replay / reschedule / poll / subscribe_to_*` (+ `_sync`
    twins)."""

    async def retrieve(self, run_id: str) -> Json:
        return await get_client().retrieve_run(run_id)

    def retrieve_sync(self, run_id: str) -> Json:
        return get_sync_client().retrieve_run(run_id)

    async def list(self, **filters: Any) -> Json:
        """A page {"data": [...], "pagination": {"next"?}}; filters: status, task, tag,
        version, batch, queue, period, project, limit, after (the previous page's `next`)."""
        return await get_client().list_runs(**filters)

    def list_sync(self, **filters: Any) -> Json:
        return get_sync_client().list_runs(**filters)

    async def cancel(self, run_id: str) -> Json:
        return await get_client().cancel_run(run_id)

    def cancel_sync(self, run_id: str) -> Json:
        return get_sync_client().cancel_run(run_id)

    async def replay(self, run_id: str) -> Json:
        """A new run of the same task with the same payload and options: {"id"}."""
        return await get_client().replay_run(run_id)

    def replay_sync(self, run_id: str) -> Json:
        return get_sync_client().replay_run(run_id)

    async def reschedule(self, run_id: str, delay: str) -> Json:
        """Move a DELAYED run's start (`delay`: "10m" or an ISO date); answers the run."""
        return await get_client().reschedule_run(run_id, delay)

    def reschedule_sync(self, run_id: str, delay: str) -> Json:
        return get_sync_client().reschedule_run(run_id, delay)

    async def poll(self, run_id: str, interval_s: float = 0.5,
                   timeout_s: float | None = None) -> Json:
        """Retrieve the run until it is final and return it; TimeoutError after `timeout_s`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            run = await self.retrieve(run_id)
            if is_final(run):
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise _poll_timeout(run_id, timeout_s or 0)
            await asyncio.sleep(interval_s)

    def poll_sync(self, run_id: str, interval_s: float = 0.5,
                  timeout_s: float | None = None) -> Json:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            run = self.retrieve_sync(run_id)
            if is_final(run):
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise _poll_timeout(run_id, timeout_s or 0)
            time.sleep(interval_s)


class Queues:
    """`queues.list / retrieve / pause / resume` (+ `_sync` twins).

    A queue is named by its task id (its `task/<id>` queue), a custom queue name, or a
    `queue_…` id; pass `type="task"|"custom"|"id"` to say which when a name is ambiguous."""

    async def list(self, page: int = 1, per_page: int = 25) -> Json:
        """{"data": [queues], "pagination": {"currentPage", "totalPages", "count"}}."""
        return await get_client().list_queues(page, per_page)

    def list_sync(self, page: int = 1, per_page: int = 25) -> Json:
        return get_sync_client().list_queues(page, per_page)

    async def retrieve(self, name: str, type: str | None = None) -> Json:
        return await get_client().retrieve_queue(name, type)

    def retrieve_sync(self, name: str, type: str | None = None) -> Json:
        return get_sync_client().retrieve_queue(name, type)

    async def pause(self, name: str, type: str | None = None) -> Json:
        """Paused queues keep accepting triggers and start nothing; answers the queue."""
        return await get_client().pause_queue(name, type)

    def pause_sync(self, name: str, type: str | None = None) -> Json:
        return get_sync_client().pause_queue(name, type)

    async def resume(self, name: str, type: str | None = None) -> Json:
        return await get_client().resume_queue(name, type)

    def resume_sync(self, name: str, type: str | None = None) -> Json:
        return get_sync_client().resume_queue(name, type)


runs = Runs()
queues = Queues()
