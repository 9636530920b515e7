"""The store contract, continued: a run's durable records (`steps`, the `run_steps` table,
docs/durability.md). Same `store` fixture: every backend passes these unchanged."""

from __future__ import annotations

from store_support import T0

from trigger_local.store import Store
from trigger_local.store.models import RunStep


def record(seq: int, run_id: str = "run_a", **fields: object) -> RunStep:
    values: dict[str, object] = dict(run_id=run_id, seq=seq, kind="step", name=f"s{seq}",
                                     attempt=1, created_at=T0 + seq)
    values.update(fields)
    return RunStep(**values)  # type: ignore[arg-type]


class TestSteps:
    async def test_records_come_back_in_seq_order_per_run(self, store: Store) -> None:  # noqa: F811
        async with store.tx() as ops:
            for seq in (3, 1, 2):
                assert await ops.steps.insert(record(seq, result=f'"r{seq}"'))
            assert await ops.steps.insert(record(1, run_id="run_b"))
        read = store.read()
        assert [(s.seq, s.name, s.result) for s in await read.steps.for_run("run_a")] == [
            (1, "s1", '"r1"'), (2, "s2", '"r2"'), (3, "s3", '"r3"')]
        assert [s.seq for s in await read.steps.for_run("run_b")] == [1]
        assert await read.steps.for_run("run_nope") == []
        got = await read.steps.get("run_a", 2)
        assert got == record(2, result='"r2"')
        assert await read.steps.get("run_a", 9) is None

    async def test_a_second_insert_at_a_seq_changes_nothing(self, store: Store) -> None:  # noqa: F811
        """Two requests racing for one call: the first one's record stays, and the transaction
        that tried the second can still commit."""
        async with store.tx() as ops:
            assert await ops.steps.insert(record(1, kind="wait.token", name=None,
                                                 waitpoint_id="waitpoint_1", status="pending"))
            assert not await ops.steps.insert(record(1, waitpoint_id="waitpoint_2"))
            assert await ops.steps.insert(record(2))
        [first, second] = await store.read().steps.for_run("run_a")
        assert (first.kind, first.waitpoint_id, first.status) == ("wait.token", "waitpoint_1",
                                                                  "pending")
        assert second.seq == 2

    async def test_update_changes_one_record_and_says_whether_it_matched(
            self, store: Store) -> None:  # noqa: F811
        async with store.tx() as ops:
            await ops.steps.insert(record(1, status="failed", result=None))
            await ops.steps.insert(record(1, run_id="run_b", status="failed"))
            assert await ops.steps.update("run_a", 1, status="completed", result='"ok"',
                                          attempt=2, completed_at=T0 + 10)
            assert not await ops.steps.update("run_a", 5, status="completed")
        got = await store.read().steps.get("run_a", 1)
        assert got is not None
        assert (got.status, got.result, got.attempt, got.completed_at) == (
            "completed", '"ok"', 2, T0 + 10)
        other = await store.read().steps.get("run_b", 1)
        assert other is not None and other.status == "failed"

    async def test_ids_and_the_result_type_round_trip(self, store: Store) -> None:  # noqa: F811
        step = record(4, kind="trigger_and_wait", name="child-task", status="pending",
                      waitpoint_id="waitpoint_9", child_run_id="run_child", batch_id=None,
                      result="steps/run_a/4", result_type="application/store")
        async with store.tx() as ops:
            await ops.steps.insert(step)
        assert await store.read().steps.get("run_a", 4) == step

    async def test_a_rolled_back_transaction_leaves_no_record(self, store: Store) -> None:  # noqa: F811
        try:
            async with store.tx() as ops:
                await ops.steps.insert(record(1))
                raise RuntimeError("the thing it records failed")
        except RuntimeError:
            pass
        assert await store.read().steps.for_run("run_a") == []
