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
