"""Upgrading the daemons of one PostgreSQL database (docs/scaling.md, "Upgrading"): a
migration is not applied while another daemon runs on the database (its code knows only the
schema it runs on: a daemon of before migration 14 would keep its packets to itself), and a
running daemon that finds the schema moved past its own (a newer trigger-local migrated it
while this daemon was paused past its lease, unseen) stops, saying why, at its next heartbeat
round. Real PostgreSQL (tests/pg_cluster.py) and a real daemon process."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import pytest
from pg_cluster import Cluster, schema_at

from tests.e2e.test_postgres_daemons import pg_daemon
from tests.e2e.test_postgres_migrate_turn import version_of
from tests.engine_support import T0, pg_engine
from trigger_local.config import DaemonSettings
from trigger_local.errors import StartupError
from trigger_local.peers import Peers
from trigger_local.store.postgres import PostgresStore
from trigger_local.store.postgres.daemons import heartbeat
from trigger_local.store.postgres.schema import MIGRATIONS
from trigger_local.store.postgres.sql import Owner

pytestmark = pytest.mark.e2e

PACKETS_MIGRATION = 14


async def test_migration_14_is_not_applied_beside_a_daemon_of_13(pg_cluster: Cluster) -> None:
    """A daemon of schema 13 stores packets only in its home: another daemon could not read
    the packets it takes, nor it theirs. Before, the migration went ahead beside it."""
    url = pg_cluster.fresh_url()
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            await schema_at(conn, PACKETS_MIGRATION - 1)
        await heartbeat(conn, Owner("daemon_13"), host="elsewhere", url="http://x",
                        executor="process", pid=4343, started_at=0.0)
    finally:
        await conn.close()
    store = PostgresStore(url, daemon_id="daemon_14")
    try:
        with pytest.raises(StartupError, match="Stop every daemon first") as refused:
            await store.open()
    finally:
        await store.close()
    assert "daemon_13 (pid 4343 on elsewhere)" in refused.value.message
    assert f"does not know version {len(MIGRATIONS)}" in refused.value.message
    assert await version_of(url) == PACKETS_MIGRATION - 1  # nothing of it applied


def test_a_daemon_stops_when_the_schema_moves_one_past_its_own(
        tmp_path: Path, pg_cluster: Cluster) -> None:
    url = pg_cluster.fresh_url()
    schema = url.rsplit("search_path=", 1)[1]
    d = pg_daemon(tmp_path, "a", url)  # lease 5 s: a heartbeat round every second
    try:
        d.start()
        assert d.api("GET", "/healthz").status_code == 200
        # what a newer trigger-local's migration leaves (its daemon started meanwhile)
        pg_cluster.psql(f"UPDATE {schema}.schema_version SET version = version + 1")
        assert d.proc is not None
        started = time.monotonic()
        code = d.proc.wait(30)
        assert code == 1, d.log_text()[-2000:]
        assert time.monotonic() - started < 15
        log = d.log_text()
        assert f"the database's schema is at version {len(MIGRATIONS) + 1}, past this " \
               f"trigger-local's ({len(MIGRATIONS)})" in log, log[-2000:]
        assert "Upgrade trigger-local here and start the daemon again" in log
        assert "Traceback" not in log, log[-3000:]
    finally:
        d.close()


async def test_a_starting_daemon_whose_first_heartbeat_finds_the_schema_moved_does_not_start(
        pg_cluster: Cluster, tmp_path: Path) -> None:
    """The start's heartbeat (daemon_core.py, before the dispatcher runs) reads the schema
    version too: a migration that committed between the store's own check and it (the
    migrating daemon did not see this one's heartbeat yet) stops the start with the one-line
    reason. Before, that beat ignored it (no supervisor yet): the daemon ran a fifth of the
    lease on a schema it does not know, until its first heartbeat round."""
    url = pg_cluster.fresh_url()
    async with pg_engine(url, tmp_path, tasks=[]) as engine:
        store = engine.store
        assert isinstance(store, PostgresStore)
        peers = Peers(store, engine, DaemonSettings(home=engine.settings.home), T0)
        conn = await asyncpg.connect(url)
        try:  # what a newer trigger-local's migration leaves
            await conn.execute("UPDATE schema_version SET version = version + 1")
        finally:
            await conn.close()
        with pytest.raises(StartupError, match="past this trigger-local's") as refused:
            await peers.beat()
        assert "Upgrade trigger-local here" in refused.value.message
