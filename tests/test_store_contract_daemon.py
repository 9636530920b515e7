"""The store contract, continued: the daemon's own records (checkpoints, task processes,
environment variables), what runs on time (schedules, rate limits, debounce keys), a run's
history (snapshots, attempts), and a closed store. Same `store` fixture: every backend."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from legacy_rows import insert_snapshot
from store_support import T0, insert_runs, make_run

from trigger_local.errors import DaemonStoppingError
from trigger_local.ids import attempt_id
from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import (
    CK_ACTIVE,
    CK_PENDING,
    Attempt,
    Checkpoint,
    Schedule,
    Worker,
)

P = "proj_local"


def checkpoint(ck_id: str, run_id: str = "run_a", **fields: object) -> Checkpoint:
    values: dict[str, object] = dict(id=ck_id, run_id=run_id, attempt=1, worker_id="worker_1",
                                     pid=42, path=f"/ck/{ck_id}", status=CK_PENDING,
                                     created_at=T0)
    values.update(fields)
    return Checkpoint(**values)  # type: ignore[arg-type]


class TestCheckpoints:
    async def test_a_pending_row_becomes_active_once(self, store: Store) -> None:  # noqa: F811
        async with store.tx() as ops:
            await ops.checkpoints.insert(checkpoint("ck_1"))
            await ops.checkpoints.insert(checkpoint("ck_2", created_at=T0 + 1))
        assert [c.id for c in await store.read().checkpoints.pending()] == ["ck_1", "ck_2"]
        async with store.tx() as ops:
            assert await ops.checkpoints.update("ck_1", CK_PENDING, status=CK_ACTIVE,
                                                size_bytes=100, dump_ms=3.5)
            assert not await ops.checkpoints.update("ck_1", CK_PENDING, status=CK_ACTIVE)
            with pytest.raises(ValueError, match="unknown checkpoint columns"):
                await ops.checkpoints.update("ck_1", None, colour="red")
        read = store.read()
        [active] = await read.checkpoints.active()
        assert (active.id, active.size_bytes, active.dump_ms) == ("ck_1", 100, 3.5)
        assert [c.id for c in await read.checkpoints.for_run("run_a")] == ["ck_1", "ck_2"]
        assert await read.checkpoints.get("ck_nope") is None

    async def test_delete_only_with_the_expected_status(self, store: Store) -> None:  # noqa: F811
        async with store.tx() as ops:
            await ops.checkpoints.insert(checkpoint("ck_1", status=CK_ACTIVE))
            assert not await ops.checkpoints.delete("ck_1", CK_PENDING)
            assert await ops.checkpoints.delete("ck_1", CK_ACTIVE)
        assert await store.read().checkpoints.get("ck_1") is None


class TestDaemonRecords:
    async def test_workers(self, store: Store) -> None:  # noqa: F811
        worker = Worker(id="worker_1", version_id="version_1", token="", pid=7, started_at=T0)
        async with store.tx() as ops:
            await ops.workers.upsert(worker)
            await ops.workers.upsert(Worker(id="worker_1", version_id="version_1", token="",
                                            pid=8, started_at=T0))
        assert [(w.id, w.pid) for w in await store.read().workers.all()] == [("worker_1", 8)]
        async with store.tx() as ops:
            await ops.workers.delete("worker_1")
        assert await store.read().workers.all() == []

    async def test_env_vars_keep_a_secret_flag_unless_told(self,
                                                           store: Store) -> None:  # noqa: F811
        async with store.tx() as ops:
            await ops.env_vars.put("p", "dev", "B", "1", True, T0)
            await ops.env_vars.put("p", "dev", "A", "x", None, T0)
            await ops.env_vars.put("p", "dev", "B", "2", None, T0 + 1)  # the flag stays
            await ops.env_vars.put("p", "dev", "A", "kept", False, T0, override=False)
            await ops.env_vars.put("p", "prod", "A", "other", None, T0)
            await ops.env_vars.put("q", "dev", "A", "q's", None, T0)  # another project's
        assert await store.read().env_vars.all("p", "dev") == [
            {"name": "A", "value": "x", "isSecret": False},
            {"name": "B", "value": "2", "isSecret": True}]
        async with store.tx() as ops:
            assert await ops.env_vars.delete("p", "dev", "A")
            assert not await ops.env_vars.delete("p", "dev", "A")
        assert await store.read().env_vars.get("p", "dev", "A") is None
        assert await store.read().env_vars.all("q", "dev") == [
            {"name": "A", "value": "q's", "isSecret": False}]

    async def test_snapshots_and_attempts_of_a_run(self, store: Store) -> None:  # noqa: F811
        await insert_runs(store, make_run("run_a"))
        async with store.tx() as ops:
            await insert_snapshot(ops, "snapshot_1", "run_a", "queued", "QUEUED", T0, "created")
            await insert_snapshot(ops, "snapshot_2", "run_a", "dequeued", "DEQUEUED", T0 + 1)
            await ops.attempts.insert(Attempt(id=attempt_id("run_a", 1), run_id="run_a", number=1,
                                              status="EXECUTING", started_at=T0))
        read = store.read()
        assert [s["kind"] for s in await read.snapshots.for_run("run_a")] == ["queued", "dequeued"]
        assert [a.id for a in await read.attempts.for_run("run_a")] == [attempt_id("run_a", 1)]
        async with store.tx() as ops:
            assert await ops.attempts.update(attempt_id("run_a", 1), status="COMPLETED",
                                             counts=False)
        [attempt] = await read.attempts.for_run("run_a")
        assert (attempt.status, attempt.counts) == ("COMPLETED", False)

    async def test_an_attempt_updated_by_its_number(self, store: Store) -> None:  # noqa: F811
        """`update_numbered`: the run's attempt with that number, no other (a finish's write)."""
        await insert_runs(store, make_run("run_a"), make_run("run_b"))
        async with store.tx() as ops:
            for run_id in ("run_a", "run_b"):
                for number in (1, 2):
                    await ops.attempts.insert(Attempt(
                        id=f"attempt_{run_id}_{number}", run_id=run_id, number=number,
                        status="EXECUTING", started_at=T0))
        async with store.tx() as ops:
            assert await ops.attempts.update_numbered("run_a", 2, status="COMPLETED",
                                                      finished_at=T0 + 1)
            assert not await ops.attempts.update_numbered("run_a", 3, status="COMPLETED")
        done = {(a.run_id, a.number): (a.status, a.finished_at)
                for r in ("run_a", "run_b") for a in await store.read().attempts.for_run(r)}
        assert done == {("run_a", 1): ("EXECUTING", None), ("run_a", 2): ("COMPLETED", T0 + 1),
                        ("run_b", 1): ("EXECUTING", None), ("run_b", 2): ("EXECUTING", None)}


class TestOnTime:
    async def test_schedules_page_and_due(self, store: Store) -> None:  # noqa: F811
        def schedule(sched_id: str, at: float, **fields: object) -> Schedule:
            values: dict[str, object] = dict(id=sched_id, type="IMPERATIVE", task_id="hello",
                                             cron="* * * * *", timezone="UTC", active=True,
                                             created_at=at, updated_at=at, next_run_at=at + 60,
                                             project=P)
            values.update(fields)
            return Schedule(**values)  # type: ignore[arg-type]

        async with store.tx() as ops:
            await ops.schedules.insert(schedule("sched_1", T0, deduplication_key="k"))
            await ops.schedules.insert(schedule("sched_2", T0 + 1, type="DECLARATIVE"))
            await ops.schedules.insert(schedule("sched_3", T0 + 2, active=False))
        read = store.read()
        assert ([s.id for s in (await read.schedules.page(0, 2))[0]],
                (await read.schedules.page(0, 2))[1]) == (["sched_1", "sched_2"], 3)
        assert [s.id for s in (await read.schedules.page(type_="DECLARATIVE"))[0]] == ["sched_2"]
        assert (await read.schedules.find_by_key(P, "k")) is not None
        assert [s.id for s in await read.timers.schedules(T0 + 61)] == ["sched_1", "sched_2"]
        assert await read.timers.next_due_at() == T0 + 60
        async with store.tx() as ops:
            assert await ops.schedules.update("sched_1", next_run_at=T0 + 500)
            assert await ops.schedules.delete("sched_2")
            assert not await ops.schedules.delete("sched_2")
        assert await read.timers.schedules(T0 + 61) == []

    async def test_rate_limit_state_and_blocks(self, store: Store) -> None:  # noqa: F811
        limit = {"limit": 2, "period_s": 10.0, "per_key": True}
        async with store.tx() as ops:
            await ops.rate_limits.set(P, "task/hello", limit)
            await ops.rate_limits.save_state(P, "task/hello", "k", T0 + 5, T0 + 3)
        read = store.read()
        assert await read.rate_limits.all() == {(P, "task/hello"): limit}
        assert await read.rate_limits.state([(P, "task/hello")]) == {(P, "task/hello", "k"): T0 + 5}
        assert await read.timers.next_due_at() == T0 + 3
        async with store.tx() as ops:
            assert await ops.rate_limits.clear_due_blocks(T0 + 2) == 0
            assert await ops.rate_limits.clear_due_blocks(T0 + 3) == 1
            await ops.rate_limits.set(P, "task/hello", None)
        assert await read.timers.next_due_at() is None
        assert await read.rate_limits.all() == {}
        # the window's state outlives the limit: set again, it goes on from where it was
        assert await read.rate_limits.state([(P, "task/hello")]) != {}

    async def test_debounce_keys(self, store: Store) -> None:  # noqa: F811
        async with store.tx() as ops:
            await ops.debounces.set(P, "hello", "k", "run_a", T0)
            await ops.debounces.set(P, "hello", "k", "run_b", T0 + 1)
        assert await store.read().debounces.get(P, "hello", "k") == ("run_b", T0 + 1)
        assert await store.read().debounces.get(P, "hello", "other") is None


async def test_a_closed_store_refuses_with_daemon_stopping(store: Store) -> None:  # noqa: F811
    """A request that arrives while the daemon closes gets a 503, never a 500."""
    await store.close()
    with pytest.raises(DaemonStoppingError):
        store.read()
    with pytest.raises(DaemonStoppingError):
        async with store.tx():
            pass
    await store.open()  # the fixture closes it


async def test_sqlite_reads_cannot_write(tmp_path: Path) -> None:
    """The reader's areas have no write methods (the type says so), and its connection is
    query_only, so not even a cast can write through it."""
    sqlite = SqliteStore(str(tmp_path / "store.db"))
    await sqlite.open()
    try:
        writer_of_reads = sqlite.read().runs
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await writer_of_reads.insert(make_run("run_a"))
    finally:
        await sqlite.close()
