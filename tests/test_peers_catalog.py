"""A daemon on a shared PostgreSQL database hears the others' commits in the order they were
made (LISTEN/NOTIFY, peers.py): one that changed the catalog (a version registered) makes it
reload its projects and versions, and a commit heard while that reload is under way is looked at
once it is done. Two real daemons' stores and listeners on a private cluster; the reload is held
back, as a loaded machine holds it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from pg_cluster import Cluster

from tests.engine_support import T0, two_daemons
from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.events import ChangedElsewhere
from trigger_local.peers import Peers
from trigger_local.store.models import TaskDef, Version
from trigger_local.store.postgres import PostgresStore
from trigger_local.store.postgres.daemons import Commit
from trigger_local.supervise import Supervisor

NEW = TaskDef(task_id="new", queue="task/new")


async def until(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.01)
    assert check(), what


def peers_of(engine: Engine, heard: list[Commit] | None = None) -> Peers:
    store = engine.store
    assert isinstance(store, PostgresStore)
    peers = Peers(store, engine, DaemonSettings(home=engine.settings.home), T0)
    if heard is not None:  # what its listener hears, in order
        told = peers.heard

        def hearing(commit: Commit) -> None:
            heard.append(commit)
            told(commit)
        peers.listener.on_commit = hearing
    return peers


async def test_a_run_triggered_right_after_its_version_is_looked_at_once_the_version_is_known(
        pg_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new project's version registered through A, then a run of it triggered there: B hears
    both commits in that order, and looks (its dispatcher's round) only once it reloaded the
    catalog. It used to look at the run's commit at once: its dispatcher dequeued the run of a
    project it did not know yet and failed it, "Version None of task noop is gone" (an e2e
    test on a loaded machine, tests/e2e/test_postgres_daemons.py)."""
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0),
                           tasks=[TaskDef(task_id="t", queue="task/t")]) as (first, second):
        heard: list[Commit] = []
        go_on = asyncio.Event()
        go_on.set()
        loading: list[int] = [0]  # reloads of B's catalog under way
        load: Callable[[], Awaitable[None]] = second.load

        async def held_back() -> None:  # while `go_on` is clear
            loading[0] += 1
            try:
                await go_on.wait()
                await load()
            finally:
                loading[0] -= 1
        monkeypatch.setattr(second, "load", held_back)
        supervisors = [Supervisor(), Supervisor()]
        for supervisor, peers in zip(supervisors, (peers_of(first), peers_of(second, heard)),
                                     strict=True):
            peers.start(supervisor)
        try:
            # both listen, A announces its commits to B, and B's first looks are over
            await until(lambda: sum(c.reconnected for c in heard) == 2, "B's listener's looks")
            first_store = first.store
            assert isinstance(first_store, PostgresStore) and first_store.others is not None
            await until(first_store.others.alive, "A to know B is there")
            await until(lambda: not loading[0], "B's first reloads")
            go_on.clear()
            # at each look: whether B knows the task the run is of
            looks: list[bool] = []
            second.hub.subscribe(ChangedElsewhere,
                                 lambda _: looks.append(bool(second.projects.owners("new"))))
            before = len(heard)
            await first.register_version(Version(id="version_new", project_dir="/new",
                                                 project="proj_new", created_at=T0,
                                                 tasks=[NEW]))
            await first.trigger(TriggerRequest(task_id="new", project="proj_new"))
            await until(lambda: [c.catalog for c in heard[before:]] == [True, False],
                        "B to hear the version's commit, then the run's")
            await asyncio.sleep(0.05)
            assert looks == []  # nothing looked at while the catalog is being reloaded
            go_on.set()
            await until(lambda: bool(looks), "B to look once it reloaded")
            assert looks == [True]
        finally:
            go_on.set()
            for supervisor in supervisors:
                await supervisor.stop_all(5)
