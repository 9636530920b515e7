"""The dispatcher's store paths (dequeue and timers) on SQLite: each statement is answered by
the index made for it — no scan of the runs table, no temporary B-tree for an ORDER BY or a
GROUP BY — and a dispatcher round costs the same number of SQLite steps with thousands of runs
waiting (in a paused queue, delayed, with a ttl, finished) as with none (issue #17). An index
regression fails here without a million-row build."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.engine_support import ProbeExecutor
from tests.store_support import sqlite_store  # noqa: F401 (the store fixture)
from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.dispatch.dispatcher import Dispatcher
from trigger_local.engine import Engine
from trigger_local.projects import DEFAULT_PROJECT
from trigger_local.store import SqliteStore
from trigger_local.store.models import COMPLETED, DELAYED, EXPIRED, QUEUED, Run, TaskDef, Version
from trigger_local.store.sqlite import runs as sql

T0 = 1_700_000_000.0
BACKLOG = 2_000
P = DEFAULT_PROJECT

#: statement → (parameters, the index that must answer it)
PLANS: dict[str, tuple[str, Any, str]] = {
    "running_counts": (sql.RUNNING_COUNTS, (), "runs_holding"),
    "first_queued_queue": (sql.FIRST_QUEUED_QUEUE, (), "runs_ready"),
    "next_queued_queue": (sql.NEXT_QUEUED_QUEUE, (P, "task/a"), "runs_ready"),
    "next_queued_project": (sql.NEXT_QUEUED_PROJECT, (P,), "runs_ready"),
    "queued_page": (sql.QUEUED_PAGE, (P, "task/a", 25), "runs_ready"),
    "due_delayed": (sql.DUE_DELAYED, (T0, 500), "runs_due_delay"),
    "due_expired": (sql.DUE_EXPIRED, (T0, 500), "runs_due_ttl"),
    "due_deadline": (sql.DUE_DEADLINE, (T0, 500), "runs_due_deadline"),
    "due_waitpoints": (sql.DUE_WAITPOINTS, {"now": T0, "limit": 500}, "waitpoints_timeout"),
    "due_schedules": (sql.DUE_SCHEDULES, (T0, 500), "schedules_due"),
    "next_due_at": (sql._NEXT_DUE, (), "runs_due_ttl"),
}


def run(run_id: str, status: str, **fields: Any) -> Run:
    values: dict[str, Any] = dict(
        id=run_id, task_id="a", status=status, snapshot_id=f"snapshot_{run_id}",
        snapshot_kind=status.lower(), queue="task/a", created_at=T0 - 100, updated_at=T0 - 100,
        queued_at=T0 - 100, project=P)
    values.update(fields)
    return Run(**values)


def backlog(n: int) -> list[Run]:
    """Runs a dispatcher round must not pay for: QUEUED in a paused queue (each with a ttl far
    off), DELAYED far off, and finished ones that still carry their times."""
    out: list[Run] = []
    for i in range(n):
        out.append(run(f"run_q{i}", QUEUED, queue="task/paused", expires_at=T0 + 3600 + i))
        out.append(run(f"run_d{i}", DELAYED, delay_until=T0 + 3600 + i))
        out.append(run(f"run_c{i}", COMPLETED, delay_until=T0 - 50, completed_at=T0 - 10))
        out.append(run(f"run_e{i}", EXPIRED, expires_at=T0 - 20, completed_at=T0 - 20))
    return out


async def fill(store: SqliteStore, runs: list[Run]) -> None:
    async with store.tx() as ops:
        await ops.runs.insert_many(runs)


def plan(path: str, statement: str, params: Any) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}", params)]


@pytest.mark.parametrize("analyzed", [False, True], ids=["fresh", "analyzed"])
async def test_each_dispatcher_statement_uses_its_index(store: SqliteStore,
                                                        analyzed: bool) -> None:
    await fill(store, backlog(BACKLOG))
    if analyzed:  # statistics must not talk the planner into another index either
        with closing(sqlite3.connect(store.path)) as conn:
            conn.execute("ANALYZE")
    for name, (statement, params, index) in PLANS.items():
        steps = plan(store.path, statement, params)
        assert any(index in step for step in steps), (name, steps)
        for step in steps:
            # runs_holding holds only the runs that hold a slot: reading all of it is the point
            assert not (step.startswith("SCAN runs") and "runs_holding" not in step), (name, steps)
            assert not step.startswith(("SCAN waitpoints", "SCAN schedules")), (name, steps)
            assert "TEMP B-TREE FOR" not in step, (name, steps)  # ORDER BY / GROUP BY sorts


async def test_queued_queues_skips_from_queue_to_queue(store: SqliteStore) -> None:
    await fill(store, [run(f"run_{p}{q}{i}", QUEUED, queue=f"task/{q}", project=p)
                       for q in "abc" for i in range(50) for p in (P, "proj_b")]
               + [run("run_x", DELAYED, queue="task/x")])
    assert await store.read().runs.queued_queues() == sorted(
        (p, f"task/{q}") for p in (P, "proj_b") for q in "abc")


class StepCounter:
    """SQLite virtual-machine steps (in units of 100) run on the store's connections."""

    def __init__(self, store: SqliteStore) -> None:
        self.steps = 0
        for conn in (store._writer, store._reader):
            assert conn is not None
            conn.set_progress_handler(self._count, 100)

    def _count(self) -> int:
        self.steps += 1
        return 0


class NoRoomExecutor(ProbeExecutor):
    room = 4


async def round_steps(tmp_path: Path, waiting: int) -> int:
    """SQLite steps of dispatcher rounds (no run startable, nothing due) over `waiting` runs of
    each kind of backlog."""
    store = SqliteStore(str(tmp_path / f"round{waiting}.db"))
    await store.open()
    try:
        engine = Engine(store, FakeClock(T0), DaemonSettings(home=tmp_path))
        await engine.register_version(Version(id="version_1", project_dir="/proj",
                                              created_at=T0 - 1000, tasks=[
            TaskDef(task_id="a", queue="task/a"), TaskDef(task_id="p", queue="task/paused")]))
        await engine.set_queue_paused("task/paused", True)
        await fill(store, backlog(waiting))
        with closing(sqlite3.connect(store.path)) as conn:  # not a commit's checkpoint later
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        dispatcher = Dispatcher(engine, NoRoomExecutor())  # type: ignore[arg-type]
        await dispatcher.tick()  # the first round asks the store what is due (engine/due.py)
        counter = StepCounter(store)
        for _ in range(10):
            await dispatcher.tick()
        return counter.steps
    finally:
        await store.close()


async def test_a_dispatcher_round_costs_the_same_over_a_backlog(tmp_path: Path) -> None:
    empty, deep = await round_steps(tmp_path, 0), await round_steps(tmp_path, BACKLOG)
    assert deep <= empty + 10, (empty, deep)
