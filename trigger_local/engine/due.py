"""The engine's in-memory schedule of due times: when the dispatcher must next fire timers.

Every timer lives in a row (a run's `delay_until`, `expires_at`, `deadline_at`; a waitpoint's
`complete_after`, `timeout_at`; a schedule's `next_run_at`; a rate-limited queue's
`blocked_until`). Asking the store for the earliest of them on every dispatcher round cost a
7-way UNION of MIN() queries per round even with no timer at all (issue #13). Instead the
units of work note each due time they write (`noting`: the unit's run, waitpoint, schedule and
rate-limit areas note the timer fields written through them), and `DueTimes` keeps them in a
heap: the dispatcher sleeps until its head, and only then runs the timer queries.

An entry is a hint, not a promise: a timer that was cancelled or moved leaves its old entry
behind, which at worst costs one timer round that finds nothing. What matters is that no due
time is missing, and for the timers written before this daemon started (or by anything that
does not go through a unit of work) the heap holds a **resync** entry: when it comes, the
dispatcher asks the store for its next due time (`TimerReader.next_due_at`, index seeks) and
pushes that as the next resync entry. A new `DueTimes` starts with a resync entry due at once.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any, cast

from ..store.catalog_areas import RateLimitStore, ScheduleStore
from ..store.models import Run, Schedule, Waitpoint
from ..store.run_areas import RunStore
from ..store.wait_areas import WaitpointStore

RUN_TIMERS = ("delay_until", "expires_at", "deadline_at")
WAITPOINT_TIMERS = ("complete_after", "timeout_at")


class DueTimes:
    """A heap of due times (epoch seconds), plus at most one resync entry."""

    def __init__(self) -> None:
        self._heap: list[float] = []
        self._resync_at: float | None = 0.0  # the store has not been asked yet
        #: called when a due time earlier than every other one is added (wakes the dispatcher)
        self.on_earlier: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def next(self) -> float | None:
        """The earliest due time, or None when nothing waits on time."""
        head = self._heap[0] if self._heap else None
        if self._resync_at is None:
            return head
        return self._resync_at if head is None else min(head, self._resync_at)

    def add(self, at: float | None) -> None:
        if at is None:
            return
        earlier = (head := self.next()) is None or at < head
        heapq.heappush(self._heap, at)
        if earlier and self.on_earlier is not None:
            self.on_earlier()

    def resync(self, at: float | None) -> None:
        """The store's next due time: when it comes, the store is asked again."""
        head = self.next()
        self._resync_at = at
        if at is not None and (head is None or at < head) and self.on_earlier is not None:
            self.on_earlier()

    def take(self, now: float) -> tuple[bool, bool]:
        """Drop every entry due at `now` or before; returns (anything was due, the resync entry
        was among them — the caller then asks the store and calls `resync`)."""
        heap, due = self._heap, False
        while heap and heap[0] <= now:
            heapq.heappop(heap)
            due = True
        resync = self._resync_at is not None and self._resync_at <= now
        if resync:
            self._resync_at = None
        return due or resync, resync


class _Noting:
    """Forwards every call to `area`; the write methods named in the subclass note the due times
    they write first."""

    def __init__(self, area: Any, due: DueTimes) -> None:
        self._area, self._due = area, due

    def __getattr__(self, name: str) -> Any:
        return getattr(self._area, name)

    def _note(self, changes: dict[str, Any], fields: tuple[str, ...]) -> None:
        for name in fields:
            value = changes.get(name)
            if value is not None:
                self._due.add(float(value))


class _NotingRuns(_Noting):
    async def insert(self, run: Run) -> None:
        self._note_run(run)
        await self._area.insert(run)

    async def insert_many(self, runs: list[Run]) -> None:
        for run in runs:
            self._note_run(run)
        await self._area.insert_many(runs)

    async def update(self, run_id: str, expected_snapshot: str | None, **changes: Any) -> bool:
        self._note(changes, RUN_TIMERS)
        return cast(bool, await self._area.update(run_id, expected_snapshot, **changes))

    def _note_run(self, run: Run) -> None:
        for at in (run.delay_until, run.expires_at, run.deadline_at):
            self._due.add(at)


class _NotingWaitpoints(_Noting):
    async def insert(self, waitpoint: Waitpoint) -> None:
        self._due.add(waitpoint.complete_after)
        self._due.add(waitpoint.timeout_at)
        await self._area.insert(waitpoint)

    async def update(self, waitpoint_id: str, expected_status: str | None = None,
                     **changes: Any) -> bool:
        self._note(changes, WAITPOINT_TIMERS)
        return cast(bool, await self._area.update(waitpoint_id, expected_status, **changes))


class _NotingSchedules(_Noting):
    async def insert(self, schedule: Schedule) -> None:
        self._due.add(schedule.next_run_at)
        await self._area.insert(schedule)

    async def update(self, schedule_id: str, **changes: Any) -> bool:
        self._note(changes, ("next_run_at",))
        return cast(bool, await self._area.update(schedule_id, **changes))


class _NotingRateLimits(_Noting):
    async def save_state(self, project: str, queue: str, key: str, tat: float,
                         blocked_until: float | None) -> None:
        self._due.add(blocked_until)
        await self._area.save_state(project, queue, key, tat, blocked_until)


def noting_runs(area: RunStore, due: DueTimes) -> RunStore:
    return cast(RunStore, _NotingRuns(area, due))


def noting_waitpoints(area: WaitpointStore, due: DueTimes) -> WaitpointStore:
    return cast(WaitpointStore, _NotingWaitpoints(area, due))


def noting_schedules(area: ScheduleStore, due: DueTimes) -> ScheduleStore:
    return cast(ScheduleStore, _NotingSchedules(area, due))


def noting_rate_limits(area: RateLimitStore, due: DueTimes) -> RateLimitStore:
    return cast(RateLimitStore, _NotingRateLimits(area, due))
