"""The process executor's bookkeeping, without processes: how many runs it says it can start.

A new task process spends its first few hundred milliseconds importing (CPU-bound), so the
executor starts only `spawn_concurrency` at a time; runs queued behind them go to whichever
process is ready first."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.engine_support import open_engine
from trigger_local.clock import FakeClock
from trigger_local.dispatch.dispatcher import Dispatcher
from trigger_local.engine import TriggerRequest
from trigger_local.executors.process import process_executor
from trigger_local.executors.workers import BUSY, IDLE, WorkerHandle
from trigger_local.store.models import EXECUTING, TaskDef


async def test_only_spawn_concurrency_processes_boot_at_once(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, FakeClock(1_700_000_000.0),
                               tasks=[TaskDef(task_id="t", queue="task/t")],
                               max_processes=10, spawn_concurrency=2)
    wakes: list[int] = []
    executor = process_executor(engine, engine.settings, "secret", lambda: wakes.append(1))
    try:
        assert executor.capacity() == 2  # not 10: two may boot at once
        for n in (1, 2):
            executor.workers[f"w{n}"] = WorkerHandle(id=f"w{n}", version_id="version_1", pid=None,
                                                     log_path=tmp_path / f"w{n}.log", state=BUSY,
                                                     booting=True)
        assert executor.capacity() == 0
        # the first process asks for work: it has booted, so one more may start
        assert await executor.next_assignment("w1", 0.01) is None
        assert wakes, "a process that finished booting must wake the dispatcher"
        assert executor.workers["w1"].state == IDLE
        assert executor.capacity() == 1 + 1  # w1 idle, and room to boot one more
        executor.settings.spawn_concurrency = 0  # auto: the CPU count, at least 2
        assert (executor.spawner.boot_limit() or 0) >= 2
    finally:
        await engine.store.close()


async def test_a_round_starts_its_runs_in_one_transaction_on_distinct_processes(
        tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, FakeClock(1_700_000_000.0),
                               tasks=[TaskDef(task_id="t", queue="task/t")], max_processes=10)
    executor = process_executor(engine, engine.settings, "secret", lambda: None)
    try:
        for n in (1, 2, 3):
            executor.workers[f"w{n}"] = WorkerHandle(id=f"w{n}", version_id="version_1", pid=None,
                                                     log_path=tmp_path / f"w{n}.log", state=IDLE)
        ids = [(await engine.trigger(TriggerRequest(task_id="t"))).run.id for _ in range(3)]
        before = engine.group.batches
        assert await Dispatcher(engine, executor).tick() == 3
        assert engine.group.batches == before + 1  # three attempts, one commit
        runs = await engine.queries.runs.get_many(ids)
        assert [r.status for r in runs] == [EXECUTING] * 3
        assert sorted(r.worker_id or "" for r in runs) == ["w1", "w2", "w3"]
        assert all(w.state == BUSY and w.mailbox.qsize() == 1
                   for w in executor.workers.values())
    finally:
        await engine.store.close()


async def test_no_process_boots_beside_a_booting_shared_one(tmp_path: Path) -> None:
    """A shared process takes runs_per_process runs as soon as it is up, so none boots beside
    it: with 1,000 runs waiting 1 s at once, a second boot took CPU from it and from the daemon
    and the waits were twice as late (issue #13)."""
    engine = await open_engine(tmp_path, FakeClock(1_700_000_000.0),
                               tasks=[TaskDef(task_id="t", queue="task/t")],
                               max_processes=10, spawn_concurrency=2)
    executor = process_executor(engine, engine.settings, "secret", lambda: None)
    try:
        executor.workers["w1"] = WorkerHandle(id="w1", version_id="version_1", pid=None,
                                              log_path=tmp_path / "w1.log", state=IDLE,
                                              booting=True, shared=True)
        assert executor.capacity() == engine.settings.runs_per_process  # its room, no boot
        assert await executor.next_assignment("w1", 0.01) is None  # up
        assert executor.capacity() == engine.settings.runs_per_process + 2
    finally:
        await engine.store.close()


async def test_the_boot_limit_reads_the_cpu_count_once(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`capacity` asks the boot limit about once per run; `os.cpu_count()` reads /sys each
    time (~7 µs), so the spawner reads it when it is made, not per call (issue #13)."""
    engine = await open_engine(tmp_path, FakeClock(1_700_000_000.0),
                               tasks=[TaskDef(task_id="t", queue="task/t")], spawn_concurrency=0)
    reads: list[int] = []

    def cpu_count() -> int:
        reads.append(1)
        return 3

    monkeypatch.setattr(os, "cpu_count", cpu_count)
    executor = process_executor(engine, engine.settings, "secret", lambda: None)
    try:
        assert [executor.spawner.boot_limit() for _ in range(3)] == [3, 3, 3]
        for _ in range(3):
            executor.capacity()
        assert len(reads) == 1
    finally:
        await engine.store.close()
