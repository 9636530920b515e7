"""Migration 10 (the dequeues' turn, a lock on `dequeue_turn`) is not applied while another
daemon runs on the database: a daemon of before it takes an advisory lock to dequeue and would
dequeue beside one taking the table lock (docs/scaling.md). `trigger-local migrate` and a
daemon's start-time migration refuse, saying to stop every daemon first, while another daemon's
heartbeat is fresh (within the lease); its own row, or a stale one, does not count. Real
PostgreSQL (tests/pg_cluster.py), the real CLI and daemon processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from pg_cluster import Cluster, schema_at

from tests.e2e.test_postgres_daemon import cli
from trigger_local.errors import StartupError
from trigger_local.store.postgres import PostgresStore
from trigger_local.store.postgres.daemons import TURN_MIGRATION, heartbeat
from trigger_local.store.postgres.schema import MIGRATIONS
from trigger_local.store.postgres.sql import Owner
from trigger_local.store.postgres.store import schema_version

pytestmark = pytest.mark.e2e

BEFORE = TURN_MIGRATION - 1


async def before_the_turn(url: str, *, daemon: str, silent_s: float = 0) -> None:
    """The schema as it was before migration 10, and `daemon`'s heartbeat `silent_s` ago."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await schema_at(conn, BEFORE)
        await heartbeat(conn, Owner(daemon), host="elsewhere", url="http://x", executor="process",
                        pid=4242, started_at=0.0)
        await conn.execute("UPDATE daemons SET heartbeat_at = heartbeat_at - $1", silent_s)
    finally:
        await conn.close()


async def version_of(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await schema_version(conn)
    finally:
        await conn.close()


async def test_a_daemon_does_not_migrate_past_9_beside_another(pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh_url()
    await before_the_turn(url, daemon="daemon_old")
    store = PostgresStore(url, daemon_id="daemon_new")
    try:
        with pytest.raises(StartupError, match="Stop every daemon first") as refused:
            await store.open()
    finally:
        await store.close()  # (nothing open once refused)
    assert "daemon_old (pid 4242 on elsewhere)" in refused.value.message
    assert await version_of(url) == BEFORE  # nothing of it applied
    # its own row (a restart within the lease) does not count
    own = PostgresStore(url, daemon_id="daemon_old")
    await own.open()
    await own.close()
    assert await version_of(url) == len(MIGRATIONS)


async def test_a_stopped_daemon_counts_only_within_its_lease(pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh_url()
    await before_the_turn(url, daemon="daemon_old", silent_s=31)
    store = PostgresStore(url, daemon_id="daemon_new", lease_s=30)
    await store.open()
    await store.close()
    assert await version_of(url) == len(MIGRATIONS)


async def test_migrate_and_a_starting_daemon_say_to_stop_every_daemon(
        tmp_path: Path, pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh_url()
    await before_the_turn(url, daemon="daemon_old")
    refused = await asyncio.to_thread(cli, "migrate", "--database", url, home=tmp_path / "home")
    assert refused.returncode == 1, refused.stdout
    assert "Stop every daemon first" in refused.stderr and "daemon_old" in refused.stderr
    assert "Traceback" not in refused.stderr
    command = [sys.executable, "-m", "trigger_local.daemon", "--home", str(tmp_path / "home2"),
               "--port", "0"]
    daemon = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=90,
        env={**os.environ, "TRIGGER_LOCAL_DATABASE_URL": url})
    assert daemon.returncode == 1
    assert daemon.stderr.startswith("error: ") and "Stop every daemon first" in daemon.stderr
    assert "Traceback" not in daemon.stderr
    assert await version_of(url) == BEFORE
