"""The run counters across savepoints and rollbacks (issue #13): on SQLite a status change is
counted by the store just before its COMMIT (store/sqlite/counts.py), not by a trigger, so a
part of a group commit that fails must leave no count behind, a transaction that rolls back
neither, and a count read inside a transaction sees its own changes. Both backends (the
`store` fixture of tests/conftest.py)."""

from __future__ import annotations

import pytest
from store_support import T0, make_run

from trigger_local.store import Store
from trigger_local.store.models import COMPLETED, EXECUTING, QUEUED, Queue


class Boom(Exception):
    pass


async def _queue_counts(store: Store) -> dict[str, tuple[int, int]]:
    return {q.name: (q.queued, q.running) for q in await store.read().queues.all()}


async def test_counts_follow_savepoints_and_rollbacks(store: Store) -> None:
    async with store.tx() as ops:
        await ops.queues.insert(Queue(name="task/hello", id="queue_hello", type="task",
                                      concurrency_limit=None, paused=False, created_at=T0,
                                      project="proj_local"))
        await ops.runs.insert_many([make_run(f"run_{i}", status=QUEUED, project="proj_local")
                                    for i in range(4)])
    async with store.tx() as ops:
        await ops.runs.update("run_0", "snapshot_run_0", status=EXECUTING)  # kept
        with pytest.raises(Boom):
            async with ops.savepoint():  # a group commit's part that fails: undone
                await ops.runs.update("run_1", "snapshot_run_1", status=EXECUTING)
                await ops.runs.update("run_1", None, status=COMPLETED)
                raise Boom
        # a compare-and-set that matches no row counts nothing
        assert not await ops.runs.update("run_2", "snapshot_stale", status=EXECUTING)
        # read inside the transaction: its own changes are there
        assert await ops.runs.count_by_status() == {QUEUED: 3, EXECUTING: 1}
        assert {q.name: (q.queued, q.running) for q in await ops.queues.all()} == {
            "task/hello": (3, 1)}
    assert await store.read().runs.count_by_status() == {QUEUED: 3, EXECUTING: 1}
    assert await _queue_counts(store) == {"task/hello": (3, 1)}
    with pytest.raises(Boom):
        async with store.tx() as ops:  # rolled back as a whole: nothing counted
            await ops.runs.update("run_3", None, status=EXECUTING)
            raise Boom
    async with store.tx() as ops:  # the next transaction starts from the stored counts
        await ops.runs.update("run_0", None, status=COMPLETED)
        await ops.runs.update("run_3", None, queue="other")  # a queue change moves its count
    assert await store.read().runs.count_by_status() == {QUEUED: 3, COMPLETED: 1}
    assert await _queue_counts(store) == {"task/hello": (2, 0)}
    assert sum((await store.read().runs.count_by_status()).values()) == len(
        await store.read().runs.page(limit=100))
