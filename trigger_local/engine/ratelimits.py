"""Rate-limited queues: `RateGate` decides, inside `dequeue`'s transaction, which QUEUED runs
may start now (GCRA, see `trigger_local.ratelimit`), and records when a refused queue may try
again so `next_due_at` wakes the dispatcher then — no polling."""

from __future__ import annotations

from typing import Any

from ..ratelimit import gcra
from ..store.models import Run, Version
from .base import EngineBase, Tx


class RateGate:
    """The rate limits and GCRA state of one dequeue round."""

    def __init__(self, limits: dict[tuple[str, str], dict[str, Any]],
                 state: dict[tuple[str, str, str], float]) -> None:
        self.limits, self.state = limits, state  # per (project, queue); per (project, queue, key)
        self.changed: set[tuple[str, str, str]] = set()
        self.blocked: dict[tuple[str, str, str], float] = {}

    def admit(self, run: Run, now: float) -> bool:
        """Take one start for `run` if its queue's window allows it now."""
        limit = self.limits.get((run.project or "", run.queue))
        if limit is None:
            return True
        key = (run.project or "", run.queue, (run.concurrency_key or "") if limit["per_key"] else "")
        ok, value = gcra(self.state.get(key), now, limit["limit"], limit["period_s"])
        if ok:
            self.state[key] = value
            self.changed.add(key)
        else:
            self.blocked[key] = min(value, self.blocked.get(key, value))
        return ok

    async def save(self, tx: Tx) -> None:
        for key in self.changed | set(self.blocked):
            tat = self.state.get(key)
            if tat is None:  # refused before any start: the window is as the first start left it
                continue
            await tx.ops.save_rate_state(key[0], key[1], key[2], tat, self.blocked.get(key))


class RateLimitMixin(EngineBase):
    async def _rate_gate(self, tx: Tx) -> RateGate | None:
        limits = await tx.ops.rate_limits()
        if not limits:
            return None
        return RateGate(limits, await tx.ops.rate_state(list(limits)))

    async def _sync_rate_limits(self, tx: Tx, version: Version) -> None:
        """Each queue of `version` (in its project) gets the rate limit its tasks declare (the
        first that does), or none."""
        wanted: dict[str, dict[str, Any] | None] = {}
        for task in version.tasks:
            if wanted.get(task.queue) is None:
                wanted[task.queue] = task.rate_limit
        for queue, limit in wanted.items():
            await tx.ops.set_rate_limit(version.project, queue, limit)

    async def _tick_rate_limits(self, tx: Tx) -> int:
        """Rate windows that opened: the dispatcher should try their queues again."""
        return await tx.ops.clear_due_rate_blocks(tx.now)
