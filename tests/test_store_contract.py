"""The store contract (huey's StorageTests): what any implementation of the storage interface
(`trigger_local.store.Store`) must do.

`store` (tests/conftest.py) is parametrised by backend name; a second backend adds a branch
there and to `open_store` (tests/store_support.py), and must pass every test here unchanged.
The tests talk to `tx()`/`read()` and the areas only, except `TestSqliteFile`, which checks the
SQLite file itself."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from store_support import (
    T0,
    P,
    insert_runs,
    make_run,
    make_wp,
)

from trigger_local.store import SqliteStore, Store
from trigger_local.store.models import (
    COMPLETED,
    DELAYED,
    EXECUTING,
    QUEUED,
    WP_COMPLETED,
    WP_DATETIME,
)
from trigger_local.store.sqlite.schema import MIGRATIONS


class TestTransactions:
    async def test_commit_is_visible_to_readers(self, store: Store) -> None:
        await insert_runs(store,
                          make_run("run_a", tags=["x"], metadata={"k": 1}, resume_parent=True))
        run = await store.read().runs.get("run_a")
        assert run is not None
        assert (run.tags, run.metadata, run.resume_parent) == (["x"], {"k": 1}, True)

    async def test_exception_rolls_back_every_write(self, store: Store) -> None:
        with pytest.raises(RuntimeError):
            async with store.tx() as ops:
                await ops.runs.insert(make_run("run_a"))
                await ops.events.append("run_a", "run.created", T0, {})
                raise RuntimeError("boom")
        assert await store.read().runs.get("run_a") is None
        assert await store.read().events.after(0) == []
        # the store is usable afterwards
        await insert_runs(store, make_run("run_b"))
        assert await store.read().runs.get("run_b") is not None

    async def test_a_savepoint_that_raises_undoes_only_its_own_writes(self,
                                                                       store: Store) -> None:
        async with store.tx() as ops:
            await ops.runs.insert(make_run("run_a"))
            with pytest.raises(RuntimeError):
                async with ops.savepoint():
                    await ops.runs.insert(make_run("run_b"))
                    await ops.events.append("run_b", "run.created", T0, {})
                    raise RuntimeError("this part fails alone")
            async with ops.savepoint():
                await ops.runs.insert(make_run("run_c"))
            assert await ops.runs.get("run_b") is None  # undone at once, inside the transaction
        read = store.read()
        assert [r is not None for r in [await read.runs.get(i) for i in ("run_a", "run_b",
                                                                         "run_c")]] \
            == [True, False, True]
        assert await read.events.after(0) == []

    async def test_get_missing_records_return_none(self, store: Store) -> None:
        ops = store.read()
        assert await ops.runs.get("run_nope") is None
        assert await ops.waitpoints.get("waitpoint_nope") is None
        assert await ops.batches.get("batch_nope") is None
        assert await ops.versions.get("version_nope") is None
        assert await ops.queues.get(P, "nope") is None
        assert await ops.projects.get("proj_nope") is None


class TestRuns:
    async def test_update_run_compare_and_set(self, store: Store) -> None:
        await insert_runs(store, make_run("run_a"))
        async with store.tx() as ops:
            assert await ops.runs.update("run_a", "snapshot_other", status=EXECUTING) is False
            assert await ops.runs.update("run_a", "snapshot_run_a", status=EXECUTING,
                                         snapshot_id="s2") is True
            assert await ops.runs.update("run_a", "snapshot_run_a", status=COMPLETED) is False
        run = await store.read().runs.get("run_a")
        assert run is not None and (run.status, run.snapshot_id) == (EXECUTING, "s2")

    async def test_update_run_without_snapshot_is_unconditional(self, store: Store) -> None:
        await insert_runs(store, make_run("run_a"))
        async with store.tx() as ops:
            assert await ops.runs.update("run_a", None, tags=["t"], error={"message": "x"})
            assert await ops.runs.update("run_missing", None, tags=["t"]) is False
        run = await store.read().runs.get("run_a")
        assert run is not None and run.tags == ["t"] and run.error == {"message": "x"}

    async def test_get_runs_keeps_requested_order(self, store: Store) -> None:
        await insert_runs(store, make_run("run_a"), make_run("run_b"))
        runs = await store.read().runs.get_many(["run_b", "run_missing", "run_a"])
        assert [r.id for r in runs] == ["run_b", "run_a"]
        assert await store.read().runs.get_many([]) == []

    async def test_find_run_by_idempotency_key_is_per_task_newest_first(self, store: Store) -> None:
        await insert_runs(
            store,
            make_run("run_old", idempotency_key="k", at=T0),
            make_run("run_new", idempotency_key="k", at=T0 + 1),
            make_run("run_other", task_id="other", idempotency_key="k", at=T0 + 2),
        )
        ops = store.read()
        found = await ops.runs.find_by_idempotency_key("hello", "k")
        assert found is not None and found.id == "run_new"
        other = await ops.runs.find_by_idempotency_key("other", "k")
        assert other is not None and other.id == "run_other"
        assert await ops.runs.find_by_idempotency_key("hello", "nope") is None


class TestListRuns:
    @pytest.fixture
    async def seeded(self, store: Store) -> Store:
        await insert_runs(
            store,
            make_run("run_1", at=T0 + 1, tags=["a"], is_test=True),
            make_run("run_2", at=T0 + 2, status=COMPLETED, task_id="other", queue="custom"),
            make_run("run_3", at=T0 + 3, tags=["a", "b"], batch_id="batch_1"),
            make_run("run_4", at=T0 + 4, status=DELAYED, parent_run_id="run_1"),
            make_run("run_5", at=T0 + 5, tags=["b"], version_id="version_1", machine="micro"),
        )
        return store

    async def _ids(self, store: Store, **filters: Any) -> list[str]:
        return [r.id for r in await store.read().runs.page(**filters)]

    async def test_newest_first(self, seeded: Store) -> None:
        assert await self._ids(seeded) == ["run_5", "run_4", "run_3", "run_2", "run_1"]

    async def test_filters(self, seeded: Store) -> None:
        assert await self._ids(seeded, statuses=[COMPLETED, DELAYED]) == ["run_4", "run_2"]
        assert await self._ids(seeded, task_ids=["other"]) == ["run_2"]
        assert await self._ids(seeded, tags=["b"]) == ["run_5", "run_3"]
        assert await self._ids(seeded, queue="custom") == ["run_2"]
        assert await self._ids(seeded, version_id="version_1") == ["run_5"]
        assert await self._ids(seeded, batch_id="batch_1") == ["run_3"]
        assert await self._ids(seeded, parent_run_id="run_1") == ["run_4"]
        assert await self._ids(seeded, created_from=T0 + 2, created_to=T0 + 3) == ["run_3", "run_2"]
        assert await self._ids(seeded, is_test=True) == ["run_1"]
        assert await self._ids(seeded, search="run_3") == ["run_3"]
        assert await self._ids(seeded, statuses=[QUEUED], tags=["a"]) == ["run_3", "run_1"]
        assert await self._ids(seeded, queue=["custom", "nope"]) == ["run_2"]
        assert await self._ids(seeded, batch_id=["batch_1"], version_id=None) == ["run_3"]
        assert await self._ids(seeded, machines=["micro"]) == ["run_5"]

    async def test_cursor_paging(self, seeded: Store) -> None:
        page1 = await self._ids(seeded, limit=2)
        page2 = await self._ids(seeded, limit=2, after=page1[-1])
        page3 = await self._ids(seeded, limit=2, after=page2[-1])
        assert (page1, page2, page3) == (["run_5", "run_4"], ["run_3", "run_2"], ["run_1"])
        # `before` walks back towards newer runs, still returned newest first
        assert await self._ids(seeded, limit=2, before="run_2") == ["run_4", "run_3"]

    async def test_paging_is_stable_when_created_at_ties(self, store: Store) -> None:
        await insert_runs(store, *(make_run(f"run_{i}", at=T0) for i in range(5)))
        seen: list[str] = []
        after = None
        while page := await self._ids(store, limit=2, after=after):
            seen.extend(page)
            after = page[-1]
        assert seen == [f"run_{i}" for i in reversed(range(5))]


class TestDispatchQueries:
    async def test_queued_runs_ordered_by_queued_at_then_id(self, store: Store) -> None:
        await insert_runs(
            store,
            make_run("run_b", queued_at=T0 + 5),
            make_run("run_a", queued_at=T0 - 10),  # priority: an earlier effective time
            make_run("run_c", queued_at=T0 + 5),
            make_run("run_d", queued_at=T0, status=DELAYED),
            make_run("run_e", queued_at=T0, queue="other"),
        )
        runs = await store.read().runs.queued(P, "task/hello", 10)
        assert [r.id for r in runs] == ["run_a", "run_b", "run_c"]
        assert [r.id for r in await store.read().runs.queued(P, "task/hello", 1)] == ["run_a"]
        assert sorted(await store.read().runs.queued_queues()) == [(P, "other"), (P, "task/hello")]

    async def test_queued_runs_per_key_caps_each_concurrency_key(self, store: Store) -> None:
        await insert_runs(
            store,
            *(make_run(f"run_a{i}", queued_at=T0 + i, concurrency_key="a") for i in range(5)),
            make_run("run_b0", queued_at=T0 + 10, concurrency_key="b"),
            make_run("run_n0", queued_at=T0 + 11),
            make_run("run_n1", queued_at=T0 + 12),
        )
        runs = await store.read().runs.queued(P, "task/hello", 10, per_key=2)
        assert [r.id for r in runs] == ["run_a0", "run_a1", "run_b0", "run_n0", "run_n1"]
        assert [r.id for r in await store.read().runs.queued(P, "task/hello", 3, per_key=1)] == [
            "run_a0", "run_b0", "run_n0"]

    async def test_running_counts_per_queue_and_key(self, store: Store) -> None:
        await insert_runs(
            store,
            make_run("run_1", status=EXECUTING),
            make_run("run_2", status="DEQUEUED"),
            make_run("run_3", status=EXECUTING, concurrency_key="u1"),
            make_run("run_4", status=QUEUED),
            make_run("run_5", status="WAITING"),
            make_run("run_6", status=EXECUTING, queue="other"),
        )
        assert await store.read().runs.running_counts() == {
            (P, "task/hello", None): 2, (P, "task/hello", "u1"): 1, (P, "other", None): 1}

    async def test_next_due_at_is_none_when_nothing_is_due(self, store: Store) -> None:
        assert await store.read().timers.next_due_at() is None
        await insert_runs(store, make_run("run_done", status=COMPLETED, expires_at=T0 + 1))
        async with store.tx() as ops:
            await ops.waitpoints.insert(make_wp("waitpoint_done", status=WP_COMPLETED,
                                                timeout_at=T0 + 1))
        assert await store.read().timers.next_due_at() is None

    @pytest.mark.parametrize("kind", ["delay", "ttl", "deadline", "datetime", "token_timeout"])
    async def test_next_due_at_sees_every_kind(self, store: Store, kind: str) -> None:
        due = T0 + 42
        async with store.tx() as ops:
            await ops.runs.insert(make_run("run_far", status=DELAYED, delay_until=T0 + 1000))
            if kind == "delay":
                await ops.runs.insert(make_run("run_x", status=DELAYED, delay_until=due))
            elif kind == "ttl":
                await ops.runs.insert(make_run("run_x", status=QUEUED, expires_at=due))
            elif kind == "deadline":
                await ops.runs.insert(make_run("run_x", status=EXECUTING, deadline_at=due))
            elif kind == "datetime":
                await ops.waitpoints.insert(make_wp("waitpoint_x", type_=WP_DATETIME,
                                                    complete_after=due))
            else:
                await ops.waitpoints.insert(make_wp("waitpoint_x", timeout_at=due))
        assert await store.read().timers.next_due_at() == due

    async def test_due_queries_respect_now(self, store: Store) -> None:
        async with store.tx() as ops:
            await ops.runs.insert(make_run("run_d", status=DELAYED, delay_until=T0 + 10))
            await ops.runs.insert(make_run("run_t", status=QUEUED, expires_at=T0 + 10))
            await ops.runs.insert(make_run("run_m", status=EXECUTING, deadline_at=T0 + 10))
            await ops.waitpoints.insert(make_wp("waitpoint_d", type_=WP_DATETIME,
                                                complete_after=T0 + 10))
        ops = store.read()
        assert (await ops.timers.delayed_runs(T0 + 9), await ops.timers.expired_runs(T0 + 9)) \
            == ([], [])
        assert (await ops.timers.deadline_runs(T0 + 9), await ops.timers.waitpoints(T0 + 9)) \
            == ([], [])
        assert [r.id for r in await ops.timers.delayed_runs(T0 + 10)] == ["run_d"]
        assert [r.id for r in await ops.timers.expired_runs(T0 + 10)] == ["run_t"]
        assert [r.id for r in await ops.timers.deadline_runs(T0 + 10)] == ["run_m"]
        assert [w.id for w in await ops.timers.waitpoints(T0 + 10)] == ["waitpoint_d"]


class TestSqliteFile:
    async def test_reopen_is_idempotent_and_keeps_data(self, tmp_path: Path) -> None:
        path = str(tmp_path / "store.db")
        store = SqliteStore(path)
        await store.open()
        await insert_runs(store, make_run("run_a"))
        await store.close()
        for _ in range(2):
            reopened = SqliteStore(path)
            await reopened.open()
            assert await reopened.read().runs.get("run_a") is not None
            await reopened.close()
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
