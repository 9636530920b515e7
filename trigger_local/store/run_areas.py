"""The storage interface, part 1: runs and what hangs off them (snapshots, attempts, events,
logs) and the timer queries. Each area is a read protocol and a write protocol that extends it;
`StoreReader` (store/interface.py) hands out only the read ones.

Every method runs inside the transaction or read it was obtained from: a write commits with the
whole transaction or not at all; a read sees what was committed when it ran (inside a
transaction: that transaction's own writes too). `get`-like methods return None for a record
that does not exist; `update`-like methods return False when no row matched."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .models import Attempt, LogEntry, LogUsage, Run, Schedule, StoredEvent, Waitpoint

#: (project, queue, concurrency key) → runs holding a slot
RunningCounts = dict[tuple[str, str, str | None], int]


class RunReader(Protocol):
    async def get(self, run_id: str) -> Run | None: ...

    async def get_many(self, run_ids: Sequence[str]) -> list[Run]:
        """The runs that exist among `run_ids`, in the order asked for."""
        ...

    async def find_by_idempotency_key(self, task_id: str, key: str,
                                      project: str | None = None) -> Run | None:
        """The newest run of `task_id` with idempotency key `key`. Keys are per project; a run
        whose project is not known yet matches any project, and `project=None` matches all."""
        ...

    async def page(self, *, statuses: Sequence[str] | None = None,
                   task_ids: Sequence[str] | None = None, tags: Sequence[str] | None = None,
                   queue: str | list[str] | None = None,
                   version_id: str | list[str] | None = None,
                   batch_id: str | list[str] | None = None, parent_run_id: str | None = None,
                   machines: Sequence[str] | None = None,
                   schedule_ids: Sequence[str] | None = None,
                   projects: Sequence[str] | None = None, created_from: float | None = None,
                   created_to: float | None = None, is_test: bool | None = None,
                   search: str | None = None, idempotency_key: str | None = None,
                   after: str | None = None, before: str | None = None,
                   limit: int = 25) -> list[Run]:
        """One page, newest first (ties broken by id, so paging is stable). `after`: the id of
        the last run of the previous page; `before`: the id of the first run of the next page
        (the `limit` runs just newer than it, still newest first); a cursor run that no longer
        exists (pruned) gives an empty page. `queue`, `version_id` and `batch_id` take one value
        or a list (any of them); every filter narrows. Each filter on its own must cost about
        the page, not the table (a million runs: ≤ 20 ms); `search` may scan, and may run off
        the event loop."""
        ...

    async def count_by_status(self) -> dict[str, int]:
        """Runs per status (statuses with none are left out); kept as counters, so it costs
        the number of statuses, not of runs."""
        ...

    async def with_status(self, statuses: Sequence[str]) -> list[Run]:
        """Every run in one of `statuses` (for the daemon's start-up; unbounded)."""
        ...

    async def on_workers(self) -> list[Run]:
        """Runs a task process executes or holds, or did before a restart: DEQUEUED or
        EXECUTING, and WAITING or QUEUED ones that still name their worker (the daemon's
        start-up; costs those runs, not the QUEUED backlog)."""
        ...

    async def children(self, parent_run_id: str) -> list[Run]:
        """The runs `parent_run_id` triggered, oldest first."""
        ...

    async def running_counts(self) -> RunningCounts:
        """Runs holding a concurrency slot (DEQUEUED, EXECUTING), per queue and key."""
        ...

    async def queued_queues(self) -> list[tuple[str, str]]:
        """(project, queue) of every queue that has QUEUED runs, in (project, queue) order; in
        time that follows the number of such queues, not of QUEUED runs (the dispatcher asks it
        every round)."""
        ...

    async def queued(self, project: str, queue: str, limit: int,
                     per_key: int | None = None) -> list[Run]:
        """QUEUED runs of `project`'s `queue`, earliest `queued_at` first (then id). With
        `per_key`, at most that many per concurrency key, so one busy key cannot fill the page
        and starve the others."""
        ...


    async def finished_before(self, before: float, limit: int) -> list[Run]:
        """Runs in a final status that completed before `before`, earliest first, at most
        `limit` (retention)."""
        ...

    async def finished_between(self, after: tuple[float, str] | None, before: float,
                               limit: int) -> list[Run]:
        """Runs in a final status that come after `after`, (completed_at, a run id) (None:
        from the first), and whose completed_at is before `before`, by completed_at, at most
        `limit` (compaction walks them with a watermark). Runs that finished at one instant
        come in the store's own order (SQLite: as they were made; PostgreSQL: by id)."""
        ...

    async def packets_in_use(self, names: Sequence[str]) -> set[str]:
        """Those of `names` (offloaded payloads, `application/store`) that some run still has
        as its payload."""
        ...


class RunStore(RunReader, Protocol):
    async def insert(self, run: Run) -> None: ...

    async def compact_history(self, run_ids: Sequence[str], event_types: Sequence[str]) -> None:
        """Delete these finished runs' snapshots — the run row says what the current one said
        (its id, kind, status and time; a final status's reason is the run's error): readers
        show it from there — and their events of `event_types`."""
        ...

    async def delete_many(self, run_ids: Sequence[str]) -> int:
        """Delete these runs and what hangs off them: snapshots, attempts, events, logs and
        spans, checkpoint records, blocking edges, and their own RUN waitpoint unless something
        still waits on it. Returns how many runs were deleted."""
        ...

    async def insert_many(self, runs: Sequence[Run]) -> None: ...

    async def update(self, run_id: str, expected_snapshot: str | None, *,
                     was: tuple[str, str | None, str] | None = None, **changes: Any) -> bool:
        """Apply `changes` (fields of `Run`). With `expected_snapshot` it is a compare-and-set:
        only if the run is still at that snapshot id. False: nothing changed (the run moved on,
        or does not exist). `was`: the run's status, project and queue at `expected_snapshot`,
        when the caller knows them (a store that counts status changes itself then need not
        read them first)."""
        ...


class SnapshotReader(Protocol):
    """A database's `snapshots` rows, written by daemons before a change's history row became
    its event (issue #13): nothing writes them now; engine/history.py shows them first, and
    retention deletes them with their run."""

    async def for_run(self, run_id: str) -> list[dict[str, Any]]:
        """The run's snapshots, oldest first: `{id, run_id, kind, status, at, description}`."""
        ...


class AttemptReader(Protocol):
    async def for_run(self, run_id: str) -> list[Attempt]:
        """The run's attempts, by number."""
        ...


class AttemptStore(AttemptReader, Protocol):
    async def insert(self, attempt: Attempt) -> None:
        """`attempt.id` is `ids.attempt_id(run_id, number)`: the SQLite store keys attempts by
        run and number and derives the id (issue #17)."""
        ...

    async def update(self, attempt_id: str, **changes: Any) -> bool: ...

    async def update_numbered(self, run_id: str, number: int, **changes: Any) -> bool:
        """`update` of the run's attempt `number` (a finishing run's current one, without
        reading its attempts first)."""
        ...


class TimerReader(Protocol):
    """What is due. The dispatcher keeps its own schedule of due times (engine/due.py) and asks
    `next_due_at` only for what this daemon did not write itself (at start, then once per
    resync); when something is due it asks for each kind. Each of these answers in time that
    follows the due rows, not the waiting or finished ones (tests/test_store_plans.py)."""

    async def next_due_at(self) -> float | None:
        """The earliest moment any timer has something to do (a delay, a ttl, a max duration,
        a waitpoint's time or timeout, a schedule's tick, a rate-limited queue's window), or
        None when nothing waits on time."""
        ...

    async def delayed_runs(self, now: float, limit: int = 500) -> list[Run]:
        """DELAYED runs whose `delay_until` has come, earliest first."""
        ...

    async def expired_runs(self, now: float, limit: int = 500) -> list[Run]:
        """Runs not started yet whose `expires_at` (ttl) has come."""
        ...

    async def deadline_runs(self, now: float, limit: int = 500) -> list[Run]:
        """Runs holding a slot whose `deadline_at` (max duration) has come."""
        ...

    async def waitpoints(self, now: float, limit: int = 500) -> list[Waitpoint]:
        """WAITING waitpoints whose time (`complete_after`) or timeout (`timeout_at`) has come."""
        ...

    async def schedules(self, now: float, limit: int = 500) -> list[Schedule]:
        """Active schedules whose `next_run_at` has come, earliest first."""
        ...


class EventReader(Protocol):
    async def after(self, seq: int, limit: int = 500,
                    run_id: str | None = None) -> list[StoredEvent]:
        """Events with a sequence number above `seq` (of `run_id` only, if given), in order."""
        ...

    async def last_seq(self) -> int:
        """The newest event's sequence number (0 for none)."""
        ...


class EventStore(EventReader, Protocol):
    async def append(self, run_id: str | None, type_: str, at: float,
                     data: dict[str, Any]) -> None:
        """Append one event. Its sequence number (increasing, never reused, in commit order)
        is drawn by the commit at the latest (PostgreSQL sends a transaction's events with its
        commit: store/postgres/pending.py). The engine writes with `append_many`; tests use this."""
        ...

    async def append_many(self, events: Sequence[tuple[str | None, str, float,
                                                     dict[str, Any]]]) -> None:
        """`append` of each (run_id, type, at, data), in order: a unit of work's events (one
        `executemany` on SQLite). The engine's `Tx.write_events` is the only caller."""
        ...


class LogReader(Protocol):
    async def for_run(self, run_id: str, after_id: int = 0, limit: int = 1000) -> list[LogEntry]:
        """The run's log lines and spans with an id above `after_id`, oldest first."""
        ...

    async def last_id(self) -> int:
        """The highest log id so far (0 for none): lines appended next get ids above it."""
        ...

    async def usage(self, run_id: str, attempt: int) -> LogUsage | None:
        """The attempt's logs against its cap as last counted (None: never counted; a
        version before the count was kept, or no line yet)."""
        ...


class LogStore(LogReader, Protocol):
    async def append(self, entries: Sequence[LogEntry]) -> None: ...

    async def add_usage(self, run_id: str, attempt: int, total: LogUsage,
                        change: LogUsage) -> None:
        """Count `change` to the attempt's logs (`marked` once set stays set); an attempt not
        counted yet gets `total` (what its count is with `change`)."""
        ...
