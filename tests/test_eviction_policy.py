"""Who is evicted when (executors/eviction.py), with a fake clock: the decision `choose`, the
next due time, the policy a daemon's settings and its CRIU give, and the evictor's own
bookkeeping of when each held run began to wait."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine.events import RunStatusChanged
from trigger_local.engine.hub import Hub
from trigger_local.engine.states import K_HELD, K_SUSPENDED
from trigger_local.executors.criu import Capability
from trigger_local.executors.eviction import Evictor, Policy, Waiter, choose, next_due
from trigger_local.executors.sharing import SharedRuns
from trigger_local.executors.workers import HELD, WorkerHandle


def waiter(run: str, since: float, *, shared: bool = True) -> Waiter:
    return Waiter(run_id=run, attempt=1, worker_id=f"w-{run}", since=since, shared=shared)


def chosen(waiters: list[Waiter], now: float, policy: Policy) -> list[str]:
    return [w.run_id for w, _ in choose(waiters, now, policy)]


def test_a_waiter_is_evicted_once_it_waited_evict_after_s() -> None:
    clock = FakeClock()
    held = [waiter("a", clock.now()), waiter("b", clock.now() + 5)]
    policy = Policy(after_s=30, max_held=0)
    clock.advance(29.9)
    assert chosen(held, clock.now(), policy) == []
    assert next_due(held, policy) == held[0].since + 30
    clock.advance(0.1)
    [(first, reason)] = choose(held, clock.now(), policy)
    assert first.run_id == "a" and "longer than evict_after_s (30 s)" in reason
    clock.advance(5)
    assert chosen(held, clock.now(), policy) == ["a", "b"]


def test_no_time_limit_when_evict_after_s_is_zero() -> None:
    held = [waiter("a", 0.0)]
    policy = Policy(after_s=0, max_held=0)
    assert chosen(held, 1e9, policy) == [] and next_due(held, policy) is None


def test_beyond_max_held_the_longest_waiters_go_first() -> None:
    clock = FakeClock()
    held = []
    for name in "dcab":  # listed in any order: the oldest wait goes first
        held.append(waiter(name, clock.now() + "abcd".index(name)))
    policy = Policy(after_s=0, max_held=2)
    clock.advance(10)
    evicted = choose(held, clock.now(), policy)
    assert [w.run_id for w, _ in evicted] == ["a", "b"]
    assert all("max_held_runs (2)" in reason for _, reason in evicted)
    assert chosen(held[:2], clock.now(), policy) == []  # at the bound: nobody


def test_runs_evicted_for_their_wait_do_not_count_against_the_bound() -> None:
    held = [waiter("old", 0.0), waiter("x", 50.0), waiter("y", 60.0)]
    assert chosen(held, 100.0, Policy(after_s=60, max_held=2)) == ["old"]  # two left: fine
    assert chosen(held, 100.0, Policy(after_s=60, max_held=1)) == ["old", "x"]
    assert chosen(held, 100.0, Policy(after_s=0, max_held=2)) == ["old"]


def test_after_a_failed_dump_a_process_of_its_own_goes_after_hold_threshold_s() -> None:
    policy = Policy(after_s=30, max_held=0, exclusive_after_s=5)
    held = [waiter("own", 0.0, shared=False), waiter("coroutine", 0.0)]
    assert chosen(held, 4.9, policy) == []
    [(first, reason)] = choose(held, 5.0, policy)
    assert first.run_id == "own" and "hold_threshold_s" in reason
    assert next_due(held, policy) == 5.0


def test_the_policy_of_a_daemon(tmp_path: Path) -> None:
    settings = DaemonSettings(home=tmp_path, evict_after_s=12, max_held_runs=7,
                              hold_threshold_s=3)
    works = SimpleNamespace(capability=Capability(True, ""))
    failed = SimpleNamespace(capability=Capability(False, "a dump failed at run time",
                                                   failed_at_run_time=True))
    assert Policy.of(settings, works) == Policy(12, 7, None)  # type: ignore[arg-type]
    assert Policy.of(settings, failed) == Policy(12, 7, 3.0)  # type: ignore[arg-type]


class FakeRecords:
    def __init__(self) -> None:
        self.evicted: list[str] = []

    async def evict(self, run_id: str, attempt: int, worker_id: str, reason: str) -> Any:
        self.evicted.append(run_id)
        return SimpleNamespace(id=run_id)


def _pool(tmp_path: Path, clock: FakeClock, **settings: Any) -> SimpleNamespace:
    config = DaemonSettings(home=tmp_path, **settings)
    engine = SimpleNamespace(hub=Hub(), clock=clock, records=FakeRecords())
    spawned: list[Any] = []

    def spawn(job: Any) -> None:
        job.close()  # a shared process's retirement watch: not under test here
        spawned.append(job)

    return SimpleNamespace(engine=engine, settings=config, workers={}, by_run={},
                           stopping=False, wake=lambda: None, spawned=spawned,
                           checkpointer=SimpleNamespace(capability=Capability(False, "off")),
                           sharing=SharedRuns(config, lambda: None), spawn=spawn)


def _waiting(pool: SimpleNamespace, run_id: str, kind: str = K_HELD) -> None:
    pool.engine.hub.publish(RunStatusChanged(
        run_id=run_id, task_id="t", project="p", queue="q", tags=(), status="WAITING",
        kind=kind, previous="EXECUTING"))


def test_the_evictor_times_each_wait_from_when_it_began(tmp_path: Path) -> None:
    clock = FakeClock()
    pool = _pool(tmp_path, clock, evict_after_s=10)
    evictor = Evictor(pool)  # type: ignore[arg-type]
    shared = WorkerHandle(id="w1", version_id="v", pid=None, log_path=tmp_path / "w1.log",
                          shared=True, state=HELD)
    shared.runs = {"early": 1, "late": 1, "busy": 1}
    shared.executing = {"busy"}
    own = WorkerHandle(id="w2", version_id="v", pid=None, log_path=tmp_path / "w2.log",
                       state=HELD, run_id="alone", attempt=2)
    pool.workers.update({"w1": shared, "w2": own})
    _waiting(pool, "early")
    _waiting(pool, "alone")
    clock.advance(4)
    _waiting(pool, "late")
    _waiting(pool, "frozen", K_SUSPENDED)  # checkpointed: not held
    assert "frozen" not in evictor.since
    clock.advance(6)
    due = asyncio.run(evictor.evict_due(clock.now()))
    assert sorted(pool.engine.records.evicted) == ["alone", "early"]
    assert due == evictor.since["late"] + 10
    assert shared.runs == {"late": 1, "busy": 1} and "w1" in pool.workers
    assert shared.messages[-1]["type"] == "evict" and shared.messages[-1]["runId"] == "early"
    assert "w2" not in pool.workers and own.run_id is None  # its process is ended
    clock.advance(4)
    asyncio.run(evictor.evict_due(clock.now()))
    assert pool.engine.records.evicted[-1] == "late" and shared.runs == {"busy": 1}
    assert "w1" in pool.workers and pool.spawned == []  # it still executes a run: it stays
    assert evictor.since == {}


def test_a_run_whose_wait_completed_is_no_longer_a_waiter(tmp_path: Path) -> None:
    """Queued again for its slot (RunUnblocked), it goes on soon: not evicted, and no round is
    spent on it however long its queue keeps it."""
    clock = FakeClock()
    pool = _pool(tmp_path, clock, evict_after_s=1)
    evictor = Evictor(pool)  # type: ignore[arg-type]
    shared = WorkerHandle(id="w", version_id="v", pid=None, log_path=tmp_path / "w.log",
                          shared=True, state=HELD)
    shared.runs = {"r": 1}
    pool.workers["w"] = shared
    _waiting(pool, "r")
    pool.engine.hub.publish(RunStatusChanged(
        run_id="r", task_id="t", project="p", queue="q", tags=(), status="QUEUED",
        kind="queued_held", previous="WAITING"))
    clock.advance(100)
    assert evictor.waiters() == []
    assert asyncio.run(evictor.evict_due(clock.now())) is None
    assert pool.engine.records.evicted == []


def test_a_stopping_daemon_evicts_nobody(tmp_path: Path) -> None:
    clock = FakeClock()
    pool = _pool(tmp_path, clock, evict_after_s=1)
    evictor = Evictor(pool)  # type: ignore[arg-type]
    own = WorkerHandle(id="w", version_id="v", pid=None, log_path=tmp_path / "w.log",
                       state=HELD, run_id="r", attempt=1)
    pool.workers["w"] = own
    _waiting(pool, "r")
    clock.advance(100)
    pool.stopping = True
    assert asyncio.run(evictor.evict_due(clock.now())) is None
    assert pool.engine.records.evicted == [] and "w" in pool.workers
