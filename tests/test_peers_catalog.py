"""A daemon on a shared PostgreSQL database hears the others' commits in the order they were
made (LISTEN/NOTIFY, peers.py): one that changed the catalog (a version registered) makes it
reload its projects and versions, and a commit heard while that reload is under way is looked at
once it is done. Two real daemons' stores and listeners on a private cluster; the reload is held
back, as a loaded machine holds it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pg_cluster import Cluster

from tests.engine_support import T0, two_daemons
from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine import Engine, TriggerRequest
from trigger_local.engine.events import ChangedElsewhere
from trigger_local.peers import Peers
from trigger_local.store.models import Project, Run, TaskDef, Version
from trigger_local.store.postgres import PostgresStore
from trigger_local.store.postgres.daemons import Commit
from trigger_local.store.postgres.runs import PgRuns
from trigger_local.supervise import Supervisor

NEW = TaskDef(task_id="new", queue="task/new")


async def until(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.01)
    assert check(), what


def peers_of(engine: Engine, heard: list[Commit] | None = None, *, deaf: bool = False,
             lease_timeout_s: float | None = None) -> Peers:
    """`engine`'s peers; `heard`: what its listener hears, in order; `deaf`: it hears no
    notice; `lease_timeout_s` sets how often its rounds come (a fifth of it)."""
    store = engine.store
    assert isinstance(store, PostgresStore)
    lease = {} if lease_timeout_s is None else {"lease_timeout_s": lease_timeout_s}
    peers = Peers(store, engine, DaemonSettings(home=engine.settings.home, **lease), T0)
    if deaf:
        peers.listener.on_commit = lambda commit: None
    if heard is not None:
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


async def started_pair(first: Engine, second: Engine, heard: list[Commit],
                       supervisors: list[Supervisor]) -> Peers:
    """Both daemons' peers started; returns B's once its listener's first looks are over."""
    peers = [peers_of(first), peers_of(second, heard)]
    for supervisor, each in zip(supervisors, peers, strict=True):
        each.start(supervisor)
    await until(lambda: sum(c.reconnected for c in heard) == 2, "B's listener's looks")
    first_store = first.store
    assert isinstance(first_store, PostgresStore) and first_store.others is not None
    await until(first_store.others.alive, "A to know B is there")
    await until(lambda: not supervisors[1]._jobs, "B's first reloads")
    return peers[1]


async def new_version_and_run(first: Engine) -> str:
    await first.register_version(Version(id="version_new", project_dir="/new",
                                         project="proj_new", created_at=T0, tasks=[NEW]))
    return (await first.trigger(TriggerRequest(task_id="new", project="proj_new"))).run.id


async def test_no_run_is_dequeued_while_the_catalog_is_reloaded(
        pg_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Holding back the NOTIFY's wake-up is not enough: B's dispatcher also runs a round on its
    5-s safety net, on a local run's end, and at once after a reconnection (the listener's
    `Commit(catalog=True, reconnected=True)` sets the due times' resync to now, which wakes it
    while the reload it starts is under way). Such a round's dequeue took the run of a project
    B did not know yet, on version None (its start then failed it, "Version None … is gone").
    While a reload is under way B's dequeue takes nothing; once it is done it takes the run on
    its version."""
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0),
                           tasks=[TaskDef(task_id="t", queue="task/t")]) as (first, second):
        heard: list[Commit] = []
        supervisors = [Supervisor(), Supervisor()]
        try:
            peers = await started_pair(first, second, heard, supervisors)
            go_on = asyncio.Event()
            load = second.load

            async def held_back() -> None:
                await go_on.wait()
                await load()
            monkeypatch.setattr(second, "load", held_back)
            before = len(heard)
            run_id = await new_version_and_run(first)
            await until(lambda: [c.catalog for c in heard[before:]] == [True, False],
                        "B to hear the version's commit, then the run's")
            woke: list[bool] = []  # a reconnection during the reload wakes B's dispatcher
            second.ctx.due.resync(None)  # as its dispatcher left it: the store had no timer
            second.ctx.due.on_earlier = lambda: woke.append(True)
            peers.heard(Commit(catalog=True, reconnected=True))
            assert woke
            assert await second.dequeue(4, 0) == []  # the round that wake-up (or any) runs
            go_on.set()
            await until(lambda: not supervisors[1]._jobs, "B's reloads")
            taken = await second.dequeue(4, 0)
            assert [(r.id, r.version_id) for r in taken] == [(run_id, "version_new")]
        finally:
            go_on.set()
            for supervisor in supervisors:
                await supervisor.stop_all(5)


async def test_a_reload_that_failed_is_tried_again(
        pg_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload that raised (the database refused a read: a cut connection, a failover) was
    not tried again until the next catalog commit: B went on without the new project, and
    dequeued its runs on version None (failed, "Version None … is gone"). It is tried again
    (backing off) until it succeeds."""
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0),
                           tasks=[TaskDef(task_id="t", queue="task/t")]) as (first, second):
        heard: list[Commit] = []
        supervisors = [Supervisor(), Supervisor()]
        try:
            await started_pair(first, second, heard, supervisors)
            load, failures = second.load, [0]

            async def fails_once() -> None:
                if not failures[0]:
                    failures[0] += 1
                    raise ConnectionResetError("the database went away")
                await load()
            monkeypatch.setattr(second, "load", fails_once)
            run_id = await new_version_and_run(first)
            await until(lambda: bool(failures[0]), "B's reload to fail")
            await until(lambda: bool(second.projects.owners("new")), "B to know the project",
                        timeout_s=10)
            taken = await second.dequeue(4, 0)
            assert [(r.id, r.version_id) for r in taken] == [(run_id, "version_new")]
        finally:
            for supervisor in supervisors:
                await supervisor.stop_all(5)


async def test_reloads_one_at_a_time_end_with_the_newest_catalog(
        pg_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two catalog commits heard close together ran two reloads at once; each reads the
    versions, then the projects, then sets both: the first one, held on its second read (a
    loaded machine), set what it read before the second commit after the second reload set
    the newer catalog — B forgot the second project's version until the next catalog commit.
    Reloads run one at a time, and again while catalog commits came during one."""
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0),
                           tasks=[TaskDef(task_id="t", queue="task/t")]) as (first, second):
        heard: list[Commit] = []
        supervisors = [Supervisor(), Supervisor()]
        go_on, held = asyncio.Event(), asyncio.Event()
        try:
            await started_pair(first, second, heard, supervisors)
            projects = second.store.read().projects
            read_all = projects.all

            async def first_held() -> list[Project]:
                if not held.is_set():
                    held.set()
                    await go_on.wait()
                return await read_all()
            monkeypatch.setattr(projects, "all", first_held)
            await new_version_and_run(first)
            await held.wait()
            before = len(heard)
            await first.register_version(Version(
                id="version_new2", project_dir="/new2", project="proj_new2", created_at=T0,
                tasks=[TaskDef(task_id="new2", queue="task/new2")]))
            await until(lambda: any(c.catalog for c in heard[before:]), "B to hear it")
            await asyncio.sleep(0.3)  # a second reload at once had ended by now
            go_on.set()
            await until(lambda: not supervisors[1]._jobs, "B's reloads")
            assert second.projects.owners("new") == ["proj_new"]
            assert second.projects.owners("new2") == ["proj_new2"]
        finally:
            go_on.set()
            for supervisor in supervisors:
                await supervisor.stop_all(5)


async def test_a_run_of_a_project_not_loaded_yet_waits_for_the_next_rounds_reload(
        pg_cluster: Cluster, tmp_path: Path) -> None:
    """Before B hears the commit of a version registered through A (a notice is late, or lost
    with a connection), any round of B's — its 5-s safety net, a local run's end — could
    dequeue a run of that new project: on version None, and its start failed it ("Version None
    … is gone"). B's dequeue now leaves such a run QUEUED, and the peers' next round reloads
    the catalog: then B takes it on its version."""
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0),
                           tasks=[TaskDef(task_id="t", queue="task/t")]) as (first, second):
        peers = peers_of(second, deaf=True, lease_timeout_s=0.5)  # B hears no notice
        supervisor = Supervisor()
        peers.start(supervisor)
        try:
            run_id = await new_version_and_run(first)
            assert await second.dequeue(4, 0) == []
            run = await second.queries.runs.get(run_id)
            assert run is not None and run.status == "QUEUED"
            await until(lambda: bool(second.projects.owners("new")), "B's round to reload")
            taken = await second.dequeue(4, 0)
            assert [(r.id, r.version_id) for r in taken] == [(run_id, "version_new")]
        finally:
            await supervisor.stop_all(5)


async def test_a_run_triggered_after_a_new_version_never_starts_on_the_version_before(
        pg_cluster: Cluster, tmp_path: Path) -> None:
    """B knows the project at `version_1`; A registers `version_2`, then a run is triggered.
    Before B hears of it (its notice late or lost), B's dequeue took the run on `version_1`,
    the version before the one registered before the trigger. Now the dequeue's first reads
    (the same round trip) say the catalog moved past B's cache: it takes nothing, has the
    cache read at once (not at the peers' next round), and then takes the run on
    `version_2`."""
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0),
                           tasks=[TaskDef(task_id="t", queue="task/t")]) as (first, second):
        old = second.projects.latest()
        assert old is not None and old.id == "version_1"
        # B hears no notice; a lease of 10 min: its rounds (every 2 min) do not come meanwhile
        peers = peers_of(second, deaf=True, lease_timeout_s=600)
        supervisor = Supervisor()
        peers.start(supervisor)
        try:
            await first.register_version(Version(id="version_2", project_dir=old.project_dir,
                                                 project=old.project, created_at=T0 + 10,
                                                 tasks=old.tasks))
            run = (await first.trigger(TriggerRequest(task_id="t", project=old.project))).run
            assert await second.dequeue(4, 0) == []
            await until(lambda: not peers.reloading and second.projects.latest() is not None
                        and second.projects.latest().id == "version_2",  # type: ignore[union-attr]
                        "B's reload")
            taken = await second.dequeue(4, 0)
            assert [(r.id, r.version_id) for r in taken] == [(run.id, "version_2")]
            # A's own registration moved A's cache with it: A is not behind
            assert first.projects.generation == await first.queries.versions.generation() == 2
        finally:
            await supervisor.stop_all(5)


async def test_a_version_registered_between_the_dequeues_reads_does_not_start_a_later_run(
        pg_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dequeue reads the catalog's generation with its first reads, then each queue's page
    of QUEUED runs in a statement of its own (read committed: a later snapshot). A version
    registered through A between the two, and a run triggered after it on a queue that already
    had a run, used to be taken by B on the version before (the page saw the run, the first
    reads not the version). Now the page's statement reads the generation too, and the dequeue
    that finds it moved takes nothing."""
    async with two_daemons(pg_cluster.fresh_url(), tmp_path, FakeClock(T0),
                           tasks=[TaskDef(task_id="t", queue="task/t")]) as (first, second):
        old = second.projects.latest()
        assert old is not None and old.id == "version_1"
        earlier = (await first.trigger(TriggerRequest(task_id="t", project=old.project))).run
        later: list[str] = []
        page = PgRuns.queued

        async def registered_meanwhile(runs: PgRuns, *args: Any, **kwargs: Any) -> list[Run]:
            if runs._sql.owner.daemon_id == "daemon_b" and not later:  # B's first page
                await first.register_version(Version(
                    id="version_2", project_dir=old.project_dir, project=old.project,
                    created_at=T0 + 10, tasks=old.tasks))
                later.append((await first.trigger(
                    TriggerRequest(task_id="t", project=old.project))).run.id)
            return await page(runs, *args, **kwargs)
        monkeypatch.setattr(PgRuns, "queued", registered_meanwhile)
        taken = await second.dequeue(4, 0)
        assert later, "B's dequeue read no page"
        assert (later[0], "version_1") not in [(r.id, r.version_id) for r in taken]
        assert taken == []  # the catalog moved: nothing taken, the cache is to be read again
        await second.load()
        taken = await second.dequeue(4, 0)
        assert sorted((r.id, r.version_id) for r in taken) == sorted(
            [(earlier.id, "version_2"), (later[0], "version_2")])
