"""Evicting a waiting run from memory (docs/durability.md, "Eviction"): the executor lets go of
the coroutine or process that holds a run waiting too long (or under memory pressure), and the
run keeps waiting in the store alone. Its attempt ends `INTERRUPTED` (not counted against
max_attempts, so the next try shows the same number), the run stays `WAITING` with snapshot kind
`evicted` and no process, and its waitpoints stay blocking: when its wait completes it is
queued like any held run and, having no process to go on in, starts a new attempt that replays
its records (engine/durable.py) — completed waits and steps are answered from the store."""

from __future__ import annotations

from ..store.models import INTERRUPTED, WAITING, WP_DATETIME, Run
from .due import waitpoint_timer
from .events import RunEvicted
from .runs import move
from .states import K_EVICTED, K_HELD
from .unit import Tx


async def evict(tx: Tx, run_id: str, attempt: int, worker_id: str, reason: str) -> Run | None:
    """Let go of `attempt` of a run held waiting on `worker_id`. None when it no longer is
    (its wait completed, it ended, or it was checkpointed meanwhile): nothing was changed, and
    the executor must keep the run where it is."""
    run = await tx.runs.get(run_id)
    if run is None or run.status != WAITING or run.snapshot_kind != K_HELD \
            or run.attempt_count != attempt or run.worker_id != worker_id:
        return None
    attempts = await tx.attempts.for_run(run.id)
    if attempts:
        await tx.attempts.update(attempts[-1].id, status=INTERRUPTED, finished_at=tx.now,
                                 counts=False, error={"message": reason})
    await _timers_back(tx, run.id)
    return await move(tx, run, WAITING, kind=K_EVICTED, worker_id=None, deadline_at=None,
                      interrupted_count=run.interrupted_count + 1, event=RunEvicted,
                      description=reason, data={"reason": reason, "attempt": attempt,
                                                "evicted_from": worker_id})


async def _timers_back(tx: Tx, run_id: str) -> None:
    """The daemon's timer of a duration wait the process kept (set a grace later: engine/waits.py
    `wait`) fires at its due time again: no process keeps it now."""
    due = tx.ctx.due
    for wp in await tx.waitpoints.blocking(run_id):
        key = waitpoint_timer(wp.id)
        if wp.type == WP_DATETIME and wp.complete_after is not None \
                and due.at(key) not in (None, wp.complete_after):
            tx.due_notes.append((key, wp.complete_after))
