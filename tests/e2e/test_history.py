"""A long history on a real daemon (issue #17): retention prunes finished runs while the daemon
runs, and a list that must scan a big table does not hold up dispatch meanwhile."""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import threading
import time
from contextlib import closing
from pathlib import Path

import httpx
from store_support import RECOUNT_SQL

from trigger_local.store import SqliteStore

from .conftest import DaemonProcess, wait_for, write_project

STAMP = """
import time
from trigger_local import task

@task(id="stamp")
async def stamp(payload, ctx):
    return {"started": time.time()}
"""
SEEDED_RUNS = 100_000


def _daemon(tmp_path: Path, **env: str) -> DaemonProcess:
    home = tmp_path / "home"
    return DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home), **env})


def test_retention_prunes_finished_runs_while_the_daemon_runs(tmp_path: Path) -> None:
    d = _daemon(tmp_path, TRIGGER_LOCAL_RETENTION_DAYS=str(2 / 86_400)).start()  # 2 s
    try:
        d.register(write_project(tmp_path / "project", STAMP))
        done = [d.trigger("stamp") for _ in range(10)]
        later = d.trigger("stamp", delay="1h")
        for run_id in done:
            d.wait_status(run_id, "COMPLETED")

        def pruned() -> bool:
            return all(d.api("GET", f"/api/v3/runs/{r}").status_code == 404 for r in done)

        wait_for(pruned, 30, what="the finished runs to be pruned")
        listed = [r["id"] for r in d.api("GET", "/api/v1/runs").json()["data"]]
        assert listed == [later]  # the live run stays
        counts = d.api("GET", "/api/v1/local/status").json()["runs"]
        assert counts == {"DELAYED": 1}
        with closing(sqlite3.connect(d.home / "trigger-local.db")) as conn:
            assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
            left = conn.execute("SELECT COUNT(*) FROM events WHERE run_id IN "
                                f"({','.join('?' * len(done))})", done).fetchone()[0]
            assert left == 0
    finally:
        d.close()


def _seed(db: Path) -> None:
    """SEEDED_RUNS finished runs, written straight into a new database before the daemon
    starts (building them through the API would take minutes)."""
    async def create() -> None:
        store = SqliteStore(str(db))
        await store.open()
        await store.close()

    db.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(create())
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO runs (id, task_id, status, snapshot_id, snapshot_kind, queue, "
            "created_at, updated_at, queued_at, completed_at, payload_type) SELECT "
            "printf('run_old%06d', i), 'old', 'COMPLETED', 's', 'finished', 'task/old', "
            "1.7e9 + i, 1.7e9 + i, 1.7e9 + i, 1.7e9 + i, 'application/json' FROM n",
            (SEEDED_RUNS - 1,))
        conn.executescript(RECOUNT_SQL)  # the seeded runs counted, as an upgraded database's are
        conn.commit()


def _trigger_to_start_ms(d: DaemonProcess, samples: int) -> float:
    latencies = []
    for _ in range(samples):
        sent = time.time()
        run = d.wait_status(d.trigger("stamp"), "COMPLETED")
        latencies.append((run["output"]["started"] - sent) * 1000)
    return statistics.median(latencies)


def test_a_scanning_list_does_not_hold_up_dispatch(tmp_path: Path) -> None:
    _seed(tmp_path / "home" / "trigger-local.db")
    # retention off: the seeded runs are years old
    d = _daemon(tmp_path, TRIGGER_LOCAL_RETENTION_DAYS="0").start()
    stop = threading.Event()
    searches: list[float] = []

    def search() -> None:
        with httpx.Client(base_url=d.url, headers={"Authorization": f"Bearer {d.key}"},
                          timeout=60) as client:
            while not stop.is_set():
                began = time.perf_counter()
                r = client.get("/api/v1/runs", params={"filter[search]": "no-such-run"})
                assert r.status_code == 200 and r.json()["data"] == []
                searches.append((time.perf_counter() - began) * 1000)

    try:
        d.register(write_project(tmp_path / "project", STAMP))
        _trigger_to_start_ms(d, 3)  # a warm process
        quiet = _trigger_to_start_ms(d, 10)
        threads = [threading.Thread(target=search, daemon=True) for _ in range(3)]
        for t in threads:
            t.start()
        wait_for(lambda: len(searches) >= 3, 60, what="the first searches")
        busy = _trigger_to_start_ms(d, 10)
        stop.set()
        for t in threads:
            t.join(60)
        scan = statistics.median(searches)
        # each search reads every run: on the event loop, three of them back to back would
        # hold every trigger and dispatch round up by about a search's time
        assert scan > 50, f"a search took only {scan:.0f} ms: the table is too small to tell"
        assert busy < quiet + scan / 2, (f"trigger→start {busy:.0f} ms while searches of "
                                         f"{scan:.0f} ms ran (quiet: {quiet:.0f} ms)")
    finally:
        stop.set()
        d.close()
