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
from trigger_local.store.postgres.store import EVENTS_CLASS


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
        # A's commit made alone is told to B once A heard it (`Others.skip`): counted first
        await _eventually(lambda: payloads.count("daemon_a||") == 1)
        await asyncio.sleep(0.2)
        before = len(looks_b)
        await _commit_an_event(a)
        await _eventually(lambda: payloads.count("daemon_a||") == 2)
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
            # the commit made alone is told first (`Others.skip`), then the next is announced
            await _eventually(lambda: payloads == ["daemon_a||"])
            await _commit_an_event(a)
            await _eventually(lambda: payloads == ["daemon_a||"] * 2)
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


async def _listening(url: str, name: str, lease_s: float, looks: list[Commit]
                     ) -> tuple[PostgresStore, asyncio.Task[None]]:
    store = PostgresStore(url, daemon_id=name, lease_s=lease_s)
    await store.open()
    await store.heartbeat(host="h", url="u", executor="process", pid=1, started_at=T0)
    return store, asyncio.create_task(store.listener(looks.append).step())


async def test_a_daemon_back_from_silence_hears_what_was_committed_meanwhile(
        heard: tuple[str, list[str]]) -> None:
    """B stops announcing once A's heartbeat is older than the lease; when A's heartbeat comes
    back (its listener connected all along: no hello), B's commits since then are told to it
    as soon as B sees A again, not left for A's next idle poll (5 s dispatcher, 10 s SSE)."""
    url, payloads = heard
    looks_a: list[Commit] = []
    a, task_a = await _listening(url, "daemon_a", 2.0, looks_a)
    b, task_b = await _listening(url, "daemon_b", 2.0, [])
    try:
        await _eventually(lambda: "daemon_b|hello|" in payloads)
        assert b.others is not None
        await _eventually(lambda: not b.others.alive())  # A silent for longer than the lease
        await a.heartbeat(host="h", url="u", executor="process", pid=1, started_at=T0)
        async with b.tx() as ops:  # A's row is fresh again: B has not read it yet
            await ops.events.append("run_b", "run.created", T0, {})
        await asyncio.sleep(0.3)
        assert not any(p.startswith("daemon_b||") for p in payloads)
        looked = len(looks_a)
        await b.daemons()  # B's heartbeat round: A is there again
        await _eventually(lambda: len(looks_a) > looked, 2.0)
        assert not looks_a[-1].reconnected  # told by B, not A's own look
    finally:
        await _stop(b, task_b)
        await _stop(a, task_a)


async def test_a_commit_that_outlasts_a_new_daemons_second_look_still_reaches_it(
        heard: tuple[str, list[str]]) -> None:
    """A lone daemon's commit decided unannounced, whose COMMIT then waits (here on the events'
    lock, held by another session) until after the new daemon's look a second after its
    hello: the new daemon hears of it once it lands."""
    url, payloads = heard
    b, task_b = await _listening(url, "daemon_b", 30.0, [])
    blocker = await asyncpg.connect(url)
    a = task_a = None
    try:
        await _eventually(lambda: "daemon_b|hello|" in payloads)
        await asyncio.sleep(0.1)
        await blocker.execute("BEGIN")
        await blocker.execute("SELECT pg_advisory_xact_lock($1, $2)", EVENTS_CLASS, b._lock_key)
        commit = asyncio.create_task(_commit_an_event(b))  # alone: decided unannounced
        await asyncio.sleep(0.3)
        looks_a: list[Commit] = []
        a, task_a = await _listening(url, "daemon_a", 30.0, looks_a)
        await _eventually(lambda: len(looks_a) >= 2, HELLO_LOOK_S + 5)  # both of A's looks
        await blocker.execute("COMMIT")  # B's commit lands after them
        await commit
        await _eventually(lambda: len(looks_a) >= 3, 2.0)
    finally:
        await blocker.close()
        if a is not None and task_a is not None:
            await _stop(a, task_a)
        await _stop(b, task_b)


async def test_a_daemon_back_from_a_pause_of_its_own_says_hello_and_hears_what_it_missed(
        heard: tuple[str, list[str]]) -> None:
    """A paused (no heartbeat, no reads) for longer than the lease: B stopped announcing to it,
    and A stopped believing in B too. A's first heartbeat round after the pause sees B again
    and says hello, so B tells A at once what it did not announce — not at B's next round."""
    url, payloads = heard
    looks_a: list[Commit] = []
    a, task_a = await _listening(url, "daemon_a", 2.0, looks_a)
    b, task_b = await _listening(url, "daemon_b", 2.0, [])
    try:
        await _eventually(lambda: "daemon_b|hello|" in payloads)
        assert a.others is not None and b.others is not None
        await _eventually(lambda: not a.others.alive() and not b.others.alive())
        await b.heartbeat(host="h", url="u", executor="process", pid=1, started_at=T0)
        await _commit_an_event(b)  # A is gone as far as B knows: not announced
        await asyncio.sleep(0.3)
        looked = len(looks_a)
        await a.heartbeat(host="h", url="u", executor="process", pid=1, started_at=T0)
        await a.daemons()  # A's round after its pause: B is there
        await _eventually(lambda: len(looks_a) > looked, 2.0)  # B was told, and told A
        assert not looks_a[-1].reconnected
    finally:
        await _stop(b, task_b)
        await _stop(a, task_a)
