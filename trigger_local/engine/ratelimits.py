"""Rate-limited queues: `RateGate` decides, inside `dequeue`'s transaction, which QUEUED runs
may start now (GCRA, see `trigger_local.ratelimit`), and records when a refused queue may try
again (engine/due.py notes that time) so the dispatcher wakes then — no polling."""

from __future__ import annotations

from ..ratelimit import gcra
from ..store.catalog_areas import RateLimit
from ..store.models import Run, Version
from .unit import Tx


class RateGate:
    """The rate limits and GCRA state of one dequeue round."""

    def __init__(self, limits: dict[tuple[str, str], RateLimit],
                 state: dict[tuple[str, str, str], float]) -> None:
        self.limits, self.state = limits, state  # per (project, queue); per (project, queue, key)
        self.changed: set[tuple[str, str, str]] = set()
        self.blocked: dict[tuple[str, str, str], float] = {}

    def refuses(self, run: Run, now: float) -> bool:
        """Whether `run`'s window is closed now, as the round began: `admit` would refuse it
        without taking a start (a round's starts may close it further)."""
        limit = self.limits.get((run.project or "", run.queue))
        if limit is None:
            return False
        return not gcra(self.state.get(self._key(run, limit)), now, limit["limit"],
                        limit["period_s"])[0]

    def admit(self, run: Run, now: float) -> bool:
        """Take one start for `run` if its queue's window allows it now."""
        limit = self.limits.get((run.project or "", run.queue))
        if limit is None:
            return True
        key = self._key(run, limit)
        ok, value = gcra(self.state.get(key), now, limit["limit"], limit["period_s"])
        if ok:
            self.state[key] = value
            self.changed.add(key)
        else:
            self.blocked[key] = min(value, self.blocked.get(key, value))
        return ok

    @staticmethod
    def _key(run: Run, limit: RateLimit) -> tuple[str, str, str]:
        return (run.project or "", run.queue,
                (run.concurrency_key or "") if limit["per_key"] else "")

    async def save(self, tx: Tx) -> None:
        for key in self.changed | set(self.blocked):
            tat = self.state.get(key)
            if tat is None:  # refused before any start: the window is as the first start left it
                continue
            await tx.rate_limits.save_state(key[0], key[1], key[2], tat, self.blocked.get(key))


async def gate(tx: Tx) -> RateGate | None:
    """The gate of one dequeue round, or None when no queue is rate-limited."""
    limits = await tx.rate_limits.all()
    if not limits:
        return None
    return RateGate(limits, await tx.rate_limits.state(list(limits)))


async def sync(tx: Tx, version: Version) -> None:
    """Each queue of `version` (in its project) gets the rate limit its tasks declare (the
    first that does), or none."""
    wanted: dict[str, RateLimit | None] = {}
    for task in version.tasks:
        if wanted.get(task.queue) is None:
            wanted[task.queue] = task.rate_limit
    for queue, limit in wanted.items():
        await tx.rate_limits.set(version.project, queue, limit)


async def tick(tx: Tx) -> int:
    """Rate windows that opened: the dispatcher should try their queues again."""
    return await tx.rate_limits.clear_due_blocks(tx.now)
