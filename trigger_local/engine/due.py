"""The engine's in-memory schedule of due times: when the dispatcher must next fire timers.

Every timer lives in a row (a run's `delay_until`, `expires_at`, `deadline_at`; a waitpoint's
`complete_after`, `timeout_at`; a schedule's `next_run_at`; a rate-limited queue's
`blocked_until`). Asking the store for the earliest of them on every dispatcher round cost a
7-way UNION of MIN() queries per round even with no timer at all (issue #13). Instead each unit
of work notes the timers it sets or clears — the `Tx`'s run, waitpoint, schedule and
rate-limit areas are wrapped (`noting_*`) to note the timer fields written through them — and
once the unit has committed the notes go into `DueTimes`, a heap keyed by timer (run id and
field, …): the dispatcher sleeps until its head, and only then runs the timer queries. A note
is applied only after the commit, so a unit that rolls back neither adds nor cancels anything.

A timer that was set and then cleared (a ttl once the run started, a max duration once it
finished, a waitpoint completed before its timeout) is cancelled, so finished work costs no
timer round. An entry that is still wrong (a run cancelled while QUEUED with a ttl) costs at
most one round that finds nothing. What matters is that no due time is missing: the timers
written before this daemon started (or by anything that does not go through a unit of work)
are reached through the **resync** entry — when it comes, the dispatcher asks the store for
its next due time (`TimerReader.next_due_at`, index seeks) and makes that the next resync
entry. A new `DueTimes` starts with a resync entry due at once.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable
from typing import Any, cast

from ..statuses import WaitpointStatus
from ..store.catalog_areas import RateLimitStore, ScheduleStore
from ..store.models import Run, Schedule, Waitpoint
from ..store.run_areas import RunStore
from ..store.wait_areas import WaitpointStore

RUN_TIMERS = ("delay_until", "expires_at", "deadline_at")
WAITPOINT_TIMERS = ("complete_after", "timeout_at")
#: (timer, its due time or None when it was cleared), as a unit of work notes them
Note = tuple[Hashable, float | None]
Noter = Callable[[Note], None]


class DueTimes:
    """Due times by timer, in a heap (cancelled entries are skipped, and compacted away when
    they outnumber the live ones), plus at most one resync entry."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._live: dict[Hashable, float] = {}
        self._seq = itertools.count()
        self._resync_at: float | None = 0.0  # the store has not been asked yet
        #: called when a due time earlier than every other one is added (wakes the dispatcher)
        self.on_earlier: Callable[[], None] | None = None
        #: the dispatcher is firing the timers it took (`take`), not all committed yet
        self.firing = False

    def __len__(self) -> int:
        return len(self._live)

    def at(self, key: Hashable) -> float | None:
        """When the timer `key` fires (None: not set, or it fired)."""
        return self._live.get(key)

    def times(self) -> list[float]:
        """Every live due time, earliest first (for tests)."""
        return sorted(self._live.values())

    def next(self) -> float | None:
        """The earliest due time, or None when nothing waits on time."""
        head = self._head()
        if self._resync_at is None:
            return head
        return self._resync_at if head is None else min(head, self._resync_at)

    def due_by(self, now: float) -> bool:
        """Whether a timer noted here is due at `now` and its round has not fired it (or is
        firing it): a run it makes runnable (a DELAYED run keeps its queue time) goes before
        a run triggered now (engine/starting.py). The resync entry is none: the timers it
        stands for are not known here (the dispatcher's first round asks at once)."""
        head = self._head()
        return self.firing or (head is not None and head <= now)

    def _head(self) -> float | None:
        heap, live = self._heap, self._live
        while heap and live.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)  # cancelled or moved
        return heap[0][0] if heap else None

    def apply(self, notes: list[Note]) -> None:
        """What a committed unit of work set (a time) or cleared (None)."""
        if not notes:
            return
        head = self.next()
        earliest: float | None = None
        for key, at in notes:
            if at is None:
                self._live.pop(key, None)
                continue
            self._live[key] = at
            heapq.heappush(self._heap, (at, next(self._seq), key))
            earliest = at if earliest is None else min(earliest, at)
        if len(self._heap) > 2 * len(self._live) + 1000:
            self._compact()
        if earliest is not None and (head is None or earliest < head) \
                and self.on_earlier is not None:
            self.on_earlier()

    def add(self, at: float, key: Hashable = None) -> None:
        """One due time (`key` None: an anonymous one, which only its time removes)."""
        self.apply([(key if key is not None else ("anonymous", next(self._seq)), at)])

    def _compact(self) -> None:
        self._heap = [(at, next(self._seq), key) for key, at in self._live.items()]
        heapq.heapify(self._heap)

    def resync(self, at: float | None) -> None:
        """The store's next due time: when it comes, the store is asked again."""
        head = self.next()
        self._resync_at = at
        if at is not None and (head is None or at < head) and self.on_earlier is not None:
            self.on_earlier()

    def resync_by(self, at: float) -> None:
        """Ask the store again at `at` at the latest: another daemon set a timer due then
        (peers.py's `Peers`). One entry whatever the number of such timers: when it comes,
        the store says the next one."""
        if self._resync_at is None or at < self._resync_at:
            self.resync(at)

    def take(self, now: float) -> tuple[bool, bool]:
        """Drop every entry due at `now` or before; returns (anything was due, the resync entry
        was among them — the caller then asks the store and calls `resync`)."""
        due = False
        while (head := self._head()) is not None and head <= now:
            _, _, key = heapq.heappop(self._heap)
            del self._live[key]
            due = True
        resync = self._resync_at is not None and self._resync_at <= now
        if resync:
            self._resync_at = None
        return due or resync, resync


def waitpoint_timer(waitpoint_id: str) -> Hashable:
    """The key of a waitpoint's `complete_after` timer, as its area notes it."""
    return (waitpoint_id, "complete_after")


class _Noting:
    """Forwards every call to `area`; the write methods of the subclasses note the timers they
    set or clear first."""

    def __init__(self, area: Any, note: Noter) -> None:
        self._area, self._note = area, note

    def __getattr__(self, name: str) -> Any:
        return getattr(self._area, name)

    def _fields(self, owner: str, changes: dict[str, Any], fields: tuple[str, ...]) -> None:
        for name in fields:
            if name in changes:
                value = changes[name]
                self._note(((owner, name), None if value is None else float(value)))


class _NotingRuns(_Noting):
    def __init__(self, area: Any, note: Noter, started: dict[str, Run],
                 changed: set[str] | None) -> None:
        super().__init__(area, note)
        self._started, self._changed = started, changed  # EngineContext's

    async def insert(self, run: Run) -> None:
        self._note_run(run)
        await self._area.insert(run)

    async def insert_many(self, runs: list[Run]) -> None:
        for run in runs:
            self._note_run(run)
        await self._area.insert_many(runs)

    async def update(self, run_id: str, expected_snapshot: str | None, **changes: Any) -> bool:
        self._fields(run_id, changes, RUN_TIMERS)
        if expected_snapshot is None:  # a change that keeps the snapshot id: a held copy of
            self._started.pop(run_id, None)  # the run would not see it (attempts.finish_current)
            if self._changed is not None:  # nor would the dispatcher's (EngineContext)
                self._changed.add(run_id)
        return cast(bool, await self._area.update(run_id, expected_snapshot, **changes))

    def _note_run(self, run: Run) -> None:
        self._fields(run.id, {n: getattr(run, n) for n in RUN_TIMERS
                              if getattr(run, n) is not None}, RUN_TIMERS)


class _NotingWaitpoints(_Noting):
    async def insert(self, waitpoint: Waitpoint) -> None:
        self._fields(waitpoint.id, {"complete_after": waitpoint.complete_after,
                                    "timeout_at": waitpoint.timeout_at}, WAITPOINT_TIMERS)
        await self._area.insert(waitpoint)

    async def update(self, waitpoint_id: str, expected_status: str | None = None,
                     **changes: Any) -> bool:
        if changes.get("status", WaitpointStatus.WAITING) != WaitpointStatus.WAITING:
            changes_seen = dict.fromkeys(WAITPOINT_TIMERS)  # done: its times no longer count
        else:
            changes_seen = changes
        self._fields(waitpoint_id, changes_seen, WAITPOINT_TIMERS)
        return cast(bool, await self._area.update(waitpoint_id, expected_status, **changes))


class _NotingSchedules(_Noting):
    async def insert(self, schedule: Schedule) -> None:
        self._note(((schedule.id, "next_run_at"),
                    schedule.next_run_at if schedule.active else None))
        await self._area.insert(schedule)

    async def update(self, schedule_id: str, **changes: Any) -> bool:
        if changes.get("active", True) is False:
            changes = {**changes, "next_run_at": None}
        self._fields(schedule_id, changes, ("next_run_at",))
        return cast(bool, await self._area.update(schedule_id, **changes))

    async def delete(self, schedule_id: str) -> bool:
        self._note(((schedule_id, "next_run_at"), None))
        return cast(bool, await self._area.delete(schedule_id))


class _NotingRateLimits(_Noting):
    async def save_state(self, project: str, queue: str, key: str, tat: float,
                         blocked_until: float | None) -> None:
        self._note((("rate", project, queue, key), blocked_until))
        await self._area.save_state(project, queue, key, tat, blocked_until)


def noting_runs(area: RunStore, note: Noter, started: dict[str, Run],
                changed: set[str] | None) -> RunStore:
    """`area`, noting the run timers its writes set; a write that keeps a run's snapshot id
    also forgets the copy its start left in `started` and notes the run in `changed`
    (EngineContext's `started`, `changed_in_place`)."""
    return cast(RunStore, _NotingRuns(area, note, started, changed))


def noting_waitpoints(area: WaitpointStore, note: Noter) -> WaitpointStore:
    return cast(WaitpointStore, _NotingWaitpoints(area, note))


def noting_schedules(area: ScheduleStore, note: Noter) -> ScheduleStore:
    return cast(ScheduleStore, _NotingSchedules(area, note))


def noting_rate_limits(area: RateLimitStore, note: Noter) -> RateLimitStore:
    return cast(RateLimitStore, _NotingRateLimits(area, note))
