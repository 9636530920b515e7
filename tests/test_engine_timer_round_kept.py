"""A full timer round of waits kept by their processes (in their grace) hides a due wait
behind them; when the processes then end theirs, nothing brings the round back for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from tests.engine_support import T0, open_engine
from tests.test_engine_resume_in_place import SharedProcesses
from trigger_local.clock import FakeClock
from trigger_local.dispatch.dispatcher import Dispatcher
from trigger_local.durations import iso
from trigger_local.engine import TriggerRequest
from trigger_local.store import Store
from trigger_local.store.models import WP_WAITING, TaskDef

KEPT = 500  # a timer round's LIMIT


async def test_a_due_wait_behind_a_full_round_of_kept_waits_is_not_stranded(
        tmp_path: Path, store: Store) -> None:
    clock = FakeClock(T0)
    engine = await open_engine(tmp_path, clock, store=store, concurrency=KEPT + 10,
                               evict_after_s=30, process_timer_grace_s=2.0,
                               tasks=[TaskDef(task_id="hello", queue="task/hello")])
    capability = SharedProcesses()
    engine.ctx.capability = capability
    dispatcher = Dispatcher(engine, cast(Any, None))
    await dispatcher._fire_timers()  # the first resync (nothing due yet)

    async def holding() -> str:
        run = (await engine.trigger(TriggerRequest(task_id="hello"))).run
        [taken] = [r for r in await engine.dequeue(10) if r.id == run.id]
        assert await engine.start_attempt(taken, "worker_1", 100) is not None
        capability.holding.add(run.id)
        return run.id

    kept = []
    for _ in range(KEPT):
        run_id = await holding()
        d = await engine.wait(run_id, 1, kind="duration", until=iso(T0 + 1), keeps_timer=True)
        kept.append((run_id, d.waitpoint_id))
    other = await holding()  # its process keeps no timer (or a token wait's timeout)
    d = await engine.wait(other, 1, kind="duration", until=iso(T0 + 1.5), keeps_timer=False)
    other_wp = d.waitpoint_id

    clock.advance(1.5)  # `other` is due; the kept ones are due and within their grace
    await dispatcher._fire_timers()
    clock.advance(0.1)  # the processes' timers fired: each says so
    for run_id, wp_id in kept:
        # True where the run resumes in place (SQLite); on PostgreSQL it is queued held
        await engine.timer_due(run_id, 1, wp_id)
    # whatever time goes by, the dispatcher's timer rounds must reach `other`
    for _ in range(5):
        clock.advance(10)
        await dispatcher._fire_timers()
    wp = await engine.queries.waitpoints.get(other_wp)
    assert wp is not None
    assert wp.status != WP_WAITING, "the wait due at T0+1.5 was never ended"
