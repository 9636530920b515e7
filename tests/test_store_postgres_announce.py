"""A daemon announces its commits (NOTIFY) only while another daemon shares the database
(store/postgres/daemons.py `Others`): alone, its own listener was the only one to get each
announcement, on the commit's path. Another daemon is known by its fresh heartbeat row and by
the hello its listener sends once it listens; on a real database, with real listeners."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from pg_cluster import Cluster
from store_support import T0

from trigger_local.store.postgres import PostgresStore
from trigger_local.store.postgres.daemons import CHANNEL, HELLO_LOOK_S, Commit


async def _eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.01)


async def _commit_an_event(store: PostgresStore) -> None:
    async with store.tx() as ops:
        await ops.events.append("run_a", "run.created", T0, {})


@pytest.fixture
async def heard(pg_cluster: Cluster) -> AsyncIterator[tuple[str, list[str]]]:
    """A schema's URL and every announcement made on it (a plain LISTEN beside the daemons)."""
    url = pg_cluster.fresh_url()
    payloads: list[str] = []
    conn = await asyncpg.connect(url)
    await conn.add_listener(CHANNEL, lambda *args: payloads.append(args[-1]))
    try:
        yield url, payloads
    finally:
        await conn.close()


async def _daemon(url: str, name: str, looks: list[Commit]) -> tuple[PostgresStore,
                                                                    asyncio.Task[None]]:
    """A store as a daemon uses it: with its listener running (peers.py)."""
    store = PostgresStore(url, daemon_id=name)
    await store.open()
    listener = store.listener(looks.append)
    return store, asyncio.create_task(listener.step())


async def _stop(store: PostgresStore, task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await store.close()


async def test_a_lone_daemon_announces_nothing_until_another_says_hello(
        heard: tuple[str, list[str]]) -> None:
    url, payloads = heard
    looks_a: list[Commit] = []
    a, task_a = await _daemon(url, "daemon_a", looks_a)
    b = task_b = None
    try:
        await _eventually(lambda: "daemon_a|hello|" in payloads)
        await _commit_an_event(a)
        await asyncio.sleep(0.3)
        assert payloads == ["daemon_a|hello|"]  # alone: its commit was not announced
        await a.heartbeat(host="h", url="u", executor="process", pid=1, started_at=T0)
        looks_b: list[Commit] = []
        b, task_b = await _daemon(url, "daemon_b", looks_b)
        await _eventually(lambda: "daemon_b|hello|" in payloads)
        await _eventually(lambda: a.others is not None and a.others.alive())
        assert b.others is not None and b.others.alive()  # A's row, read as B listened
        before = len(looks_b)
        await _commit_an_event(a)
        await _eventually(lambda: any(p.startswith("daemon_a||") for p in payloads))
        await _eventually(lambda: len(looks_b) > before)  # B woke for A's commit
        # A looked as it listened and once more after its hello; B's hello is no commit
        await _eventually(lambda: len(looks_a) >= 2, HELLO_LOOK_S + 5)
        await asyncio.sleep(0.1)
        assert [(c.reconnected, c.catalog) for c in looks_a] == [(True, True)] * 2
    finally:
        if b is not None and task_b is not None:
            await _stop(b, task_b)
        await _stop(a, task_a)


async def test_another_daemons_fresh_heartbeat_makes_commits_announced(
        heard: tuple[str, list[str]]) -> None:
    """Known by its row too (the heartbeat round reads them): a row silent for longer than the
    lease is a daemon gone, and announces nothing to."""
    url, payloads = heard
    a = PostgresStore(url, daemon_id="daemon_a", lease_s=30.0)
    await a.open()
    try:
        a.listener(lambda _commit: None)  # (not started: the rows alone say who is there)
        await a.heartbeat(host="h", url="u", executor="process", pid=1, started_at=T0)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO daemons (id, host, url, executor, pid, started_at, heartbeat_at) "
                "VALUES ('daemon_gone', 'h', 'u', 'process', 2, 0, 0)")
            await a.daemons()
            await _commit_an_event(a)
            await asyncio.sleep(0.3)
            assert payloads == []  # itself and a daemon gone long ago: alone
            b = PostgresStore(url, daemon_id="daemon_b")
            await b.open()
            await b.heartbeat(host="h", url="u", executor="process", pid=3, started_at=T0)
            await b.close()
            await a.daemons()
            await _commit_an_event(a)
            await _eventually(lambda: any(p.startswith("daemon_a||") for p in payloads))
        finally:
            await conn.close()
    finally:
        await a.close()


async def test_a_store_with_no_listener_announces_every_commit(
        heard: tuple[str, list[str]]) -> None:
    """A store that is not a daemon's (no listener: it cannot know who is there) announces
    as before."""
    url, payloads = heard
    store = PostgresStore(url, daemon_id="daemon_a")
    await store.open()
    try:
        await _commit_an_event(store)
        await _eventually(lambda: any(p.startswith("daemon_a||") for p in payloads))
    finally:
        await store.close()
