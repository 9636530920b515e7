"""A burst of log lines whose commit went through while its request was canceled (the
runtime's channel closed before the answer came; on PostgreSQL the COMMIT is shielded, so it
completes while the request that sent it is gone, and the daemon's memory never learns of it):
the runtime sends the burst again (`first`), and the daemon takes what it holds from the store's
count (engine/log_cap.py `lines_received`), not from its memory, so the lines are stored once.
A real PostgreSQL cluster (tests/pg_cluster.py) and a real cancellation; a deferred trigger
that sleeps at the COMMIT holds it open long enough for the cancel to land during it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
from engine_support import HELLO, T0, open_engine, start, trigger
from pg_cluster import Cluster

from trigger_local.clock import FakeClock
from trigger_local.engine.log_cap import Pending
from trigger_local.store.models import LogEntry, LogUsage
from trigger_local.store.postgres import PostgresStore

_SLOW_COMMIT = """
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON logs DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW WHEN (NEW.message = 'slow') EXECUTE FUNCTION slow_commit();
"""
_SLEEPING = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
             "AND datname = current_database()")


async def test_a_burst_committed_under_a_canceled_request_is_stored_once_when_sent_again(
        pg_cluster: Cluster, tmp_path: Path) -> None:
    url = pg_cluster.fresh_url()
    store = PostgresStore(url)
    await store.open()
    watch = await asyncpg.connect(url)
    try:
        await watch.execute(_SLOW_COMMIT)
        engine = await open_engine(tmp_path, FakeClock(T0), tasks=[HELLO], store=store)
        run = await trigger(engine)
        await start(engine, run.id)
        burst = [LogEntry(run_id=run.id, attempt=1, at=T0, level="info", message=text)
                 for text in ("one", "two", "slow")]
        request = asyncio.create_task(engine.append_logs(burst, first=0))
        await _until(lambda: watch.fetchval(_SLEEPING), 1)  # its COMMIT is in the trigger
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)
        assert request.cancelled()
        await _until(lambda: watch.fetchval(_SLEEPING), 0)  # the COMMIT ends
        assert len(await store.read().logs.for_run(run.id)) == 3  # it went through
        await engine.append_logs(burst, first=0, recount=True)  # the runtime sends it again
        await engine.append_logs([LogEntry(run_id=run.id, attempt=1, at=T0, level="info",
                                           message="four")], first=3)
        messages = [e.message for e in await store.read().logs.for_run(run.id)]
        assert messages == ["one", "two", "slow", "four"], messages
        usage = await store.read().logs.usage(run.id, 1)
        assert usage is not None and usage.stored_lines == 4
        # and the daemon's memory, which the cap is decided from, goes on from the store's
        mine = await engine.ctx.log_caps.current(Pending(), store.read().logs, (run.id, 1))
        assert mine == usage == LogUsage(4, usage.stored_bytes)
    finally:
        await watch.close()
        await store.close()


async def _until(read: Callable[[], Awaitable[object]], value: object) -> None:
    for _ in range(1000):
        if await read() == value:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never {value!r}")
