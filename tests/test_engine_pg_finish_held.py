"""Two daemons on one PostgreSQL database: a completion on one daemon must see what the other
wrote to its run without a new snapshot id — here the RUN waitpoint a trigger-and-wait on the
other daemon gave the run while it executed (its idempotency key named it). A copy of the run
kept in memory since the start (`EngineContext.started`) cannot see that write, and the
compare-and-set on the snapshot id does not catch it: the waitpoint would never complete."""

from __future__ import annotations

from pathlib import Path

from pg_cluster import Cluster

from tests.engine_support import T0, two_daemons
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, TriggerRequest
from trigger_local.store.models import COMPLETED, WP_COMPLETED, TaskDef


async def test_a_run_waitpoint_made_on_another_daemon_completes_with_the_run(
        pg_cluster: Cluster, tmp_path: Path) -> None:
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0),
                           tasks=[TaskDef(task_id="noop", queue="task/noop")]) as (a, b):
        first = await a.trigger(TriggerRequest(task_id="noop", idempotency_key="once"))
        [taken] = await a.dequeue(1)
        assert taken.id == first.run.id
        assert await a.start_attempt(taken, "worker_a", 1) is not None
        waited = await b.trigger(TriggerRequest(task_id="noop", idempotency_key="once"),
                                 wait=True)
        assert waited.cached and waited.run.id == taken.id and waited.waitpoint_id
        done = await a.finish_attempt(taken.id, 1, AttemptOutcome(ok=True, output='{"a": 1}'))
        assert done.status == COMPLETED
        wp = await b.queries.waitpoints.get(waited.waitpoint_id)
        assert wp is not None and wp.status == WP_COMPLETED and wp.output == '{"a": 1}'


async def test_a_shared_store_keeps_no_copy_of_a_run(pg_cluster: Cluster, tmp_path: Path) -> None:
    """Nothing is kept in memory for a run on a shared store, written in place or not: no copy
    another daemon's write could make stale, none left behind by a run another daemon ends."""
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0),
                           tasks=[TaskDef(task_id="noop", queue="task/noop")]) as (a, b):
        waited = await a.trigger(TriggerRequest(task_id="noop"), wait=True)
        [taken] = await a.dequeue(1)
        assert await a.start_attempt(taken, "worker_a", 1) is not None
        await a.update_metadata(taken.id, {"progress": 1})
        assert a.ctx.started == {} and a.ctx.changed_in_place == set()
        await b.cancel(taken.id)  # ended by the other daemon: nothing of it stays on `a`
        await a.worker_lost(taken.id, 1, "killed", error_name="Killed")  # its process, on `a`
        assert a.ctx.started == {} and a.ctx.changed_in_place == set()
        wp = await a.queries.waitpoints.get(waited.waitpoint_id or "")
        assert wp is not None and wp.status == WP_COMPLETED
