"""The executor is composed of pieces (docs/architecture.md, "The executor"): one pool
(`PoolExecutor`) with a spawner (a process or a container) and an optional checkpointer (CRIU or
`docker checkpoint`). Checked from the source with `ast`, and on the pools the daemon builds:

- no executor or spawner class inherits another concrete class of its kind (the docker executor
  is not a process executor with overrides);
- a checkpointer holds no executor: it is given a `CheckpointSupport` (and the docker one the
  `Containers` view of its spawner), and touches no private member of anything but itself;
- both executors are the same pool class, differing only in their spawner and checkpointer.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.engine_support import open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import TriggerRequest
from trigger_local.executors.base import WorkerPool
from trigger_local.executors.checkpoints import Checkpointer
from trigger_local.executors.containers import ContainerHandle
from trigger_local.executors.docker import ContainerSpawner, docker_executor
from trigger_local.executors.docker_checkpoints import DockerCheckpointer
from trigger_local.executors.pool import PoolExecutor
from trigger_local.executors.process import ProcessSpawner, process_executor
from trigger_local.executors.workers import HELD, WorkerHandle
from trigger_local.store.models import TaskDef, Version

EXECUTORS = Path(__file__).resolve().parent.parent / "trigger_local" / "executors"
CHECKPOINTERS = ("checkpoints.py", "docker_checkpoints.py")
#: the names of the pool as a whole: a checkpointer that names one of them holds the executor
POOL_NAMES = {"PoolExecutor", "WorkerPool", "ContainerPool", "ProcessExecutor", "DockerExecutor"}


def _classes() -> dict[str, tuple[str, ast.ClassDef]]:
    """Every class of executors/, by name: (its file, its definition)."""
    found: dict[str, tuple[str, ast.ClassDef]] = {}
    for path in sorted(EXECUTORS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                found[node.name] = (path.name, node)
    return found


def _methods(cls: ast.ClassDef) -> set[str]:
    return {n.name for n in cls.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def _bases(cls: ast.ClassDef) -> set[str]:
    return {b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in cls.bases}


def test_no_executor_or_spawner_inherits_another() -> None:
    classes = _classes()
    concrete = {name: cls for name, (_, cls) in classes.items() if "Protocol" not in _bases(cls)}
    executors = {n for n, c in concrete.items() if {"assign", "next_assignment"} <= _methods(c)}
    spawners = {n for n, c in concrete.items() if {"launch", "new_worker"} <= _methods(c)}
    assert executors == {"PoolExecutor"}, "one executor class: the pool"
    assert spawners >= {"ProcessSpawner", "ContainerSpawner"}
    inheriting = {f"{name}({', '.join(sorted(_bases(concrete[name]) & set(concrete)))})"
                  for name in executors | spawners if _bases(concrete[name]) & set(concrete)}
    assert inheriting == set(), "compose pieces instead of overriding a concrete executor"


def test_checkpointers_hold_no_executor_and_touch_no_private_member() -> None:
    for name in CHECKPOINTERS:
        tree = ast.parse((EXECUTORS / name).read_text())
        named = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
            n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert named & POOL_NAMES == set(), f"{name} names the executor"
        holds = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                 and isinstance(n.value, ast.Name) and n.value.id == "self"
                 and n.attr in ("executor", "pool")]
        assert holds == [], f"{name} keeps the executor: {holds}"
        private = [ast.unparse(n) for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                   and n.attr.startswith("_") and not n.attr.startswith("__")
                   and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"))]
        assert private == [], f"{name} reaches into another object's private members: {private}"


async def test_both_executors_are_one_pool_with_their_own_pieces(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, FakeClock(1_700_000_000.0),
                               tasks=[TaskDef(task_id="t", queue="task/t")], max_processes=3,
                               runs_per_process=4)
    try:
        local = process_executor(engine, engine.settings, "secret", lambda: None)
        docker = docker_executor(engine, engine.settings, "secret", lambda: None)
        assert type(local) is type(docker) is PoolExecutor
        assert isinstance(local.spawner, ProcessSpawner)
        assert isinstance(local.checkpointer, Checkpointer)
        assert isinstance(docker.spawner, ContainerSpawner)
        assert isinstance(docker.checkpointer, DockerCheckpointer)
        for pool in (local, docker):  # a checkpointer is given a view, never the pool itself
            assert pool not in vars(pool.checkpointer).values()
        assert (local.name, docker.name) == ("process", "docker")
        # the pool counts capacity in runs: a shared container executing one run of four has
        # room for three more, beside two new containers; no engine, no room at all
        assert docker.capacity() == 0, "the engine was not checked yet"
        assert isinstance(docker.spawner, ContainerSpawner)
        docker.spawner.why_not = None
        worker = ContainerHandle(id="w1", version_id="version_1", pid=None,
                                 log_path=tmp_path / "w1.log", shared=True, state="busy")
        worker.runs, worker.executing = {"run_1": 1}, {"run_1"}
        docker.workers["w1"] = worker
        assert docker.capacity() == 3 + 2
    finally:
        await engine.store.close()


async def test_a_pool_without_a_checkpointer_holds_every_wait(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, FakeClock(1_700_000_000.0),
                               tasks=[TaskDef(task_id="t", queue="task/t")])
    try:
        pool = PoolExecutor(engine, engine.settings, "secret", lambda: None,
                            ProcessSpawner(engine, engine.settings, "secret"))
        pool.workers["w1"] = WorkerHandle(id="w1", version_id="version_1", pid=None,
                                          log_path=tmp_path / "w1.log", state=HELD,
                                          run_id="run_1", attempt=1)
        pool.by_run["run_1"] = "w1"
        assert pool.can_checkpoint() is False
        assert pool.request_freeze("run_1", 1) == {"freeze": False}
        assert pool.holds("w1") and not pool.is_frozen("w1")
        assert await pool.freeze(pool.workers["w1"], "run_1", 1, 0.0) is False
        assert pool.describe()["checkpoints"]["available"] is False
    finally:
        await engine.store.close()


class _SlowSpawner(ProcessSpawner):
    """A process spawner whose launch waits to be let go, and starts nothing."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.entered, self.go = asyncio.Event(), asyncio.Event()

    async def launch(self, worker: WorkerHandle, version: Version,
                     enlist: Callable[[WorkerHandle], None]) -> None:
        self.entered.set()
        await self.go.wait()
        enlist(worker)

    async def watch(self, pool: WorkerPool, worker: WorkerHandle) -> None:
        await asyncio.Event().wait()


async def test_a_worker_being_launched_counts_against_max_processes(tmp_path: Path) -> None:
    # concurrent starts each checked the cap, then awaited the launch before the pool counted
    # the worker: under load three processes ran with max_processes = 2
    engine = await open_engine(tmp_path, FakeClock(1_700_000_000.0), max_processes=1,
                               tasks=[TaskDef(task_id="t", queue="task/t")])
    spawner = _SlowSpawner(engine, engine.settings, "secret")
    pool = PoolExecutor(engine, engine.settings, "secret", lambda: None, spawner)
    try:
        run = (await engine.trigger(TriggerRequest(task_id="t"))).run
        assert engine.current_version is not None and pool.capacity() == 1
        launching = asyncio.create_task(pool.start_worker(engine.current_version, run, False))
        await asyncio.wait_for(spawner.entered.wait(), 10)
        assert pool.live_processes() == 1 and pool.capacity() == 0
        spawner.go.set()
        await asyncio.wait_for(launching, 10)
        assert pool.live_processes() == 1
    finally:
        spawner.go.set()
        for task in pool._tasks:
            task.cancel()
        await engine.store.close()
