"""The store contract, continued: waitpoints and their edges, batches, logs, events, the request
cache and the key-value area. Same `store` fixture (every backend) as tests/test_store_contract.py,
whose docstring says how a backend joins."""

from __future__ import annotations

from store_support import (
    T0,
    make_run,
    make_wp,
)

from trigger_local.store import Store
from trigger_local.store.models import (
    COMPLETED,
    EXECUTING,
    WP_COMPLETED,
    WP_DATETIME,
    WP_MANUAL,
    WP_WAITING,
    Batch,
    LogEntry,
)


class TestWaitpoints:
    async def test_blocking_edges_and_pending_count(self, store: Store) -> None:
        async with store.tx() as ops:
            await ops.runs.insert(make_run("run_a", status="WAITING"))
            await ops.waitpoints.insert(make_wp("waitpoint_1"))
            await ops.waitpoints.insert(make_wp("waitpoint_2"))
            await ops.waitpoints.block("run_a", ["waitpoint_1", "waitpoint_2"], T0)
            await ops.waitpoints.block("run_a", ["waitpoint_1"], T0)  # blocking twice is one edge
        ops = store.read()
        assert sorted(w.id for w in await ops.waitpoints.blocking("run_a")) \
            == ["waitpoint_1", "waitpoint_2"]
        assert await ops.waitpoints.pending_count("run_a") == 2
        assert await ops.waitpoints.blocked_runs("waitpoint_1") == ["run_a"]
        async with store.tx() as tx_ops:
            assert await tx_ops.waitpoints.update("waitpoint_1", WP_WAITING, status=WP_COMPLETED)
            assert not await tx_ops.waitpoints.update("waitpoint_1", WP_WAITING,
                                                      status=WP_COMPLETED)
        assert await ops.waitpoints.pending_count("run_a") == 1
        async with store.tx() as tx_ops:
            await tx_ops.waitpoints.unblock("run_a")
        assert await ops.waitpoints.blocking("run_a") == []
        assert await ops.waitpoints.pending_count("run_a") == 0

    async def test_find_waitpoint_by_key_honours_type_and_expiry(self, store: Store) -> None:
        async with store.tx() as ops:
            await ops.waitpoints.insert(make_wp("waitpoint_1", idempotency_key="k",
                                               idempotency_expires_at=T0 + 10))
        ops = store.read()
        found = await ops.waitpoints.find_by_key(WP_MANUAL, "k", T0 + 9)
        assert found is not None and found.id == "waitpoint_1"
        assert await ops.waitpoints.find_by_key(WP_DATETIME, "k", T0) is None
        assert await ops.waitpoints.find_by_key(WP_MANUAL, "k", T0 + 10) is None

    async def test_waitpoint_keys_count_within_their_project(self, store: Store) -> None:
        async with store.tx() as ops:
            await ops.waitpoints.insert(make_wp("waitpoint_1", idempotency_key="k",
                                               project="proj_a"))
            await ops.waitpoints.insert(make_wp("waitpoint_2", idempotency_key="k"))
        ops = store.read()
        assert (await ops.waitpoints.find_by_key(WP_MANUAL, "k", T0, "proj_a")).id \
            == "waitpoint_1"  # type: ignore[union-attr]
        assert (await ops.waitpoints.find_by_key(WP_MANUAL, "k", T0)).id \
            == "waitpoint_2"  # type: ignore[union-attr]
        assert await ops.waitpoints.find_by_key(WP_MANUAL, "k", T0, "proj_b") is None
        page = await ops.waitpoints.page(type_=WP_MANUAL, project="proj_a")
        assert [w.id for w in page] == ["waitpoint_1"]

    async def test_ended_batches_are_the_processing_ones_with_every_run_final(
            self, store: Store) -> None:
        def batch(batch_id: str, runs: list[str], run_count: int, status: str,
                  at: float) -> Batch:
            return Batch(id=batch_id, run_count=run_count, created_at=at, status=status,
                         run_ids=runs)
        async with store.tx() as ops:
            for run_id, status in (("run_a", COMPLETED), ("run_b", "FAILED"),
                                   ("run_c", COMPLETED), ("run_d", EXECUTING)):
                await ops.runs.insert(make_run(run_id, status=status,
                                               batch_id=f"batch_{run_id[-1]}"))
            await ops.batches.insert(batch("batch_a", ["run_a"], 1, "PROCESSING", T0 + 2))
            await ops.batches.insert(batch("batch_b", ["run_b"], 1, "PROCESSING", T0 + 1))
            await ops.batches.insert(batch("batch_c", ["run_c"], 2, "PROCESSING", T0))  # 1 of 2
            await ops.batches.insert(batch("batch_d", ["run_d"], 1, "PROCESSING", T0))  # live
            await ops.batches.insert(batch("batch_e", [], 0, COMPLETED, T0))
        read = store.read()
        assert await read.batches.ended(10) == ["batch_b", "batch_a"]  # oldest first
        assert await read.batches.ended(1) == ["batch_b"]


class TestLogsEventsCache:
    async def test_logs_append_and_read_after_id(self, store: Store) -> None:
        entries = [LogEntry(run_id="run_a", at=T0 + i, level="info", message=f"m{i}",
                            attributes={"i": i})
                   for i in range(3)]
        async with store.tx() as ops:
            await ops.logs.append([*entries,
                                   LogEntry(run_id="run_b", at=T0, level="info", message="other")])
        logs = await store.read().logs.for_run("run_a")
        assert [(e.message, e.attributes) for e in logs] \
            == [("m0", {"i": 0}), ("m1", {"i": 1}), ("m2", {"i": 2})]
        first_id = logs[0].id
        assert first_id is not None
        rest = await store.read().logs.for_run("run_a", after_id=first_id)
        assert [e.message for e in rest] == ["m1", "m2"]
        assert [e.message for e in await store.read().logs.for_run("run_a", limit=1)] == ["m0"]

    async def test_events_after(self, store: Store) -> None:
        async with store.tx() as ops:
            await ops.events.append("run_a", "run.created", T0, {"n": 1})
            await ops.events.append("run_b", "run.created", T0, {"n": 2})
            await ops.events.append(None, "queue.paused", T0, {"n": 3})
        ops = store.read()
        s1, s2, s3 = [e.seq for e in await ops.events.after(0)]
        assert s1 < s2 < s3  # in the order they were appended
        assert [e.data for e in await ops.events.after(0)] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert [e.data for e in await ops.events.after(s1)] == [{"n": 2}, {"n": 3}]
        assert [e.seq for e in await ops.events.after(0, run_id="run_b")] == [s2]
        assert [e.seq for e in await ops.events.after(0, limit=1)] == [s1]
        assert await ops.events.last_seq() == s3

    async def test_request_cache(self, store: Store) -> None:
        async with store.tx() as ops:
            await ops.requests.put("key", T0, {"id": "run_a"})
        ops = store.read()
        assert await ops.requests.get("key", since=T0 - 1) == {"id": "run_a"}
        assert await ops.requests.get("key", since=T0 + 1) is None  # older than the window
        assert await ops.requests.get("other", since=0) is None
        async with store.tx() as tx_ops:
            await tx_ops.requests.put("key", T0 + 5, {"id": "run_b"})
        assert await ops.requests.get("key", since=T0) == {"id": "run_b"}
        async with store.tx() as tx_ops:
            await tx_ops.requests.put("newer", T0 + 7, {"id": "run_c"})
            await tx_ops.requests.put("older", T0 + 1, {"id": "run_d"})
        async with store.tx() as tx_ops:  # the oldest first, at most `limit`
            assert await tx_ops.requests.prune(before=T0 + 6, limit=1) == 1
        assert await ops.requests.get("older", since=0) is None
        assert await ops.requests.get("key", since=0) == {"id": "run_b"}
        async with store.tx() as tx_ops:
            assert await tx_ops.requests.prune(before=T0 + 6, limit=10) == 1
        assert await ops.requests.get("key", since=0) is None
        assert await ops.requests.get("newer", since=0) == {"id": "run_c"}

    async def test_kv(self, store: Store) -> None:
        assert await store.read().kv.get("k") is None
        async with store.tx() as ops:
            await ops.kv.set("k", "1")
            await ops.kv.set("k", "2")
        assert await store.read().kv.get("k") == "2"
