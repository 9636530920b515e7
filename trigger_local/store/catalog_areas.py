"""The storage interface, part 3: what the projects declare and the operator sets — projects,
their versions (with tasks), queues, schedules, rate limits, debounce keys and environment
variables. The contract of store/run_areas.py holds here too. Queues, schedules, rate limits
and debounce keys are per project: two projects may both have `task/hello`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .models import Project, Queue, Schedule, Version

#: one queue's rate limit: {"limit": starts, "period_s": window, "per_key": bool}
RateLimit = dict[str, Any]


class ProjectReader(Protocol):
    async def get(self, ref: str) -> Project | None: ...

    async def all(self) -> list[Project]:
        """Every project, by ref."""
        ...


class ProjectStore(ProjectReader, Protocol):
    async def upsert(self, project: Project) -> None:
        """Insert, or replace the row of the same ref (its `created_at` is kept)."""
        ...

    async def update(self, ref: str, **changes: Any) -> bool: ...


class VersionReader(Protocol):
    async def get(self, version_id: str) -> Version | None:
        """The version with its tasks (by task id)."""
        ...

    async def latest(self, project: str | None = None) -> Version | None:
        """`project`'s newest version (the one it runs); with None, the newest of any project."""
        ...

    async def current(self) -> list[Version]:
        """The newest version of each project."""
        ...

    async def generation(self) -> int:
        """How many times the versions changed (PostgreSQL: counted by the database, read with
        a dequeue's first reads, and in a dequeue that read pages of queued runs since, as the
        last of those read it; SQLite, whose catalog one daemon alone writes: 0)."""
        ...


class VersionStore(VersionReader, Protocol):
    async def insert(self, version: Version) -> None:
        """The version and its tasks; a version never changes afterwards."""
        ...


class QueueReader(Protocol):
    async def get(self, project: str, name: str) -> Queue | None:
        """The queue `name` of `project`, or the queue whose id is `name` (in any project)."""
        ...

    async def all(self, project: str | None = None) -> list[Queue]:
        """Every queue (of `project`), by project then name, with its running and queued
        counts filled in."""
        ...

    async def paused(self) -> set[tuple[str, str]]:
        """(project, name) of every paused queue."""
        ...

    async def limits(self) -> dict[tuple[str, str], int]:
        """The concurrency limit per (project, name), of the queues that have one."""
        ...


class QueueStore(QueueReader, Protocol):
    async def insert(self, queue: Queue) -> None:
        """Insert the queue; one that exists already (same project and name) is kept as it is."""
        ...

    async def update(self, project: str, name: str, **changes: Any) -> bool: ...


class ScheduleReader(Protocol):
    async def get(self, schedule_id: str) -> Schedule | None: ...

    async def find_by_key(self, project: str, deduplication_key: str) -> Schedule | None:
        """Deduplication keys are per project."""
        ...

    async def page(self, offset: int = 0, limit: int = 25, *, type_: str | None = None,
                   task_id: str | None = None,
                   project: str | None = None) -> tuple[list[Schedule], int]:
        """One page of schedules, oldest first, and how many match the filter in all."""
        ...


class ScheduleStore(ScheduleReader, Protocol):
    async def insert(self, schedule: Schedule) -> None: ...

    async def update(self, schedule_id: str, **changes: Any) -> bool: ...

    async def delete(self, schedule_id: str) -> bool: ...


class RateLimitReader(Protocol):
    async def all(self, project: str | None = None) -> dict[tuple[str, str], RateLimit]:
        """The rate limit of each limited queue (of `project`), per (project, queue)."""
        ...

    async def state(self, queues: Sequence[tuple[str, str]]) -> dict[tuple[str, str, str], float]:
        """The GCRA theoretical arrival time per (project, queue, key) of those queues."""
        ...


class RateLimitStore(RateLimitReader, Protocol):
    async def set(self, project: str, queue: str, limit: RateLimit | None) -> None:
        """Set (None: clear) the rate limit of `project`'s `queue`; its state is kept."""
        ...

    async def save_state(self, project: str, queue: str, key: str, tat: float,
                         blocked_until: float | None) -> None:
        """Record a key's arrival time, and when a refused queue may try again (a timer)."""
        ...

    async def clear_due_blocks(self, now: float) -> int:
        """Forget the `blocked_until` times that have come; returns how many."""
        ...


class DebounceReader(Protocol):
    async def get(self, project: str, task_id: str, key: str) -> tuple[str, float] | None:
        """(run id, first trigger time) of the debounce key of `project`'s `task_id`."""
        ...


class DebounceStore(DebounceReader, Protocol):
    async def set(self, project: str, task_id: str, key: str, run_id: str,
                  first_at: float) -> None: ...


class EnvVarReader(Protocol):
    async def all(self, project: str, env: str) -> list[dict[str, Any]]:
        """`project`'s variables of environment `env`, by name: `{"name", "value",
        "isSecret"}`."""
        ...

    async def get(self, project: str, env: str, name: str) -> dict[str, Any] | None: ...


class EnvVarStore(EnvVarReader, Protocol):
    async def put(self, project: str, env: str, name: str, value: str, is_secret: bool | None,
                  now: float, *, override: bool = True) -> None:
        """Insert, or with `override` replace; `is_secret=None` keeps an existing flag."""
        ...

    async def delete(self, project: str, env: str, name: str) -> bool: ...
