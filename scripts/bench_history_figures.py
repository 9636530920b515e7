"""The daemon-wide figures of scripts/bench_history.py: status, trigger→start, no-op
throughput, an idempotent re-trigger, restart and stop times, disk per run, RSS."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Any

from bench_history_build import BATCH
from bench_history_daemon import Daemon, pct, wait_for

Figures = dict[str, Any]


def timed(samples: int, call: Any) -> tuple[float, float]:
    """p50, p99 in ms of `samples` calls of `call()`."""
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return pct(times, 50), pct(times, 99)


def status_latency(d: Daemon, samples: int) -> tuple[float, float]:
    return timed(samples, lambda: d.http.get("/api/v1/local/status").raise_for_status())


def queues_latency(d: Daemon, samples: int) -> tuple[float, float]:
    return timed(samples, lambda: d.http.get("/api/v1/queues",
                                             params={"perPage": "25"}).raise_for_status())


def idempotent_retrigger(d: Daemon, task: str, key: str, samples: int) -> tuple[float, float]:
    """Triggering again with an old run's idempotency key: the lookup by key, answered cached."""
    def call() -> None:
        if not d.trigger(task, None, idempotencyKey=key).get("isCached"):
            raise SystemExit(f"re-triggering {task} with key {key!r} made a new run")
    return timed(samples, call)


def wait_done(d: Daemon, run_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = d.run(run_id)
        if run["isCompleted"]:
            return run
        if time.monotonic() > deadline:
            raise SystemExit(f"{run_id} did not finish within {timeout:.0f} s: {run['status']}")
        time.sleep(0.002)


def trigger_to_start(d: Daemon, samples: int) -> tuple[float, float]:
    """Sequential `stamp` runs (an unpaused task, a warm process): the task's own
    `time.time()` at its first line minus the moment the trigger call was sent."""
    wait_done(d, d.trigger("stamp")["id"])
    latencies = []
    for _ in range(samples):
        sent = time.time()
        run = wait_done(d, d.trigger("stamp")["id"])
        latencies.append((run["output"]["started"] - sent) * 1000)
    return pct(latencies, 50), pct(latencies, 99)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _burst(d: Daemon, runs: int) -> float:
    """Seconds from the first trigger call to the last of `runs` no-op runs finishing (the
    batches' `updatedAt`, so polling every 0.1 s does not round the figure)."""
    items = [{"task": "noop", "payload": "null",
              "options": {"payloadType": "application/json"}}] * BATCH
    started = time.time()
    batch_ids = [d.batch(items[: min(BATCH, runs - i)])["id"] for i in range(0, runs, BATCH)]
    finished: list[float] = []
    for batch_id in batch_ids:
        def done(batch_id: str = batch_id) -> bool:
            batch = d.http.get(f"/api/v2/batches/{batch_id}").json()
            if batch["status"] == "COMPLETED":
                finished.append(_epoch(batch["updatedAt"]))
            return bool(batch["status"] == "COMPLETED")
        wait_for(done, 600, f"batch {batch_id} to complete", every=0.1)
    return max(finished) - started


def throughput(d: Daemon, runs: int) -> float:
    """No-op runs per second, batch-triggered 500 a call, after a warm-up burst of 500 (so
    the task processes are up)."""
    _burst(d, BATCH)
    return runs / _burst(d, runs)


def restarts(d: Daemon, times: int) -> Figures:
    """Stop (SIGTERM → exit) and start (spawn → /healthz ok) `times` times, counting the
    CancelledError lines each stop logs."""
    stops, starts, cancelled = [], [], 0
    for _ in range(times):
        before = d.log_path.stat().st_size
        stops.append(d.stop())
        with d.log_path.open("rb") as log:
            log.seek(before)
            cancelled += log.read().count(b"CancelledError")
        starts.append(d.start())
    return {"stop_s": stops, "start_s": starts, "cancelled_lines": cancelled}


def wait_compacted(d: Daemon, timeout: float) -> dict[str, float]:
    """Wait (at most `timeout` s) until the daemon's retention loop has compacted every run
    finished by now (the daemon runs with a short `compact_after_s`, Daemon.start). Reads the
    database read-only beside the daemon (WAL): the compaction watermark in kv, and the
    finished runs through runs_finished. Returns the seconds waited and the share of the
    finished runs compacted by then (below 1 when the wait timed out: the loop takes at most
    a tenth of the daemon's time, so a big history is compacted over a while)."""
    cutoff, started = time.time(), time.perf_counter()
    db = d.home / "trigger-local.db"

    def query(sql: str, params: tuple[Any, ...] = ()) -> Any:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as con:
            row = con.execute(sql, params).fetchone()
            return None if row is None else row[0]

    def mark() -> float:
        raw = query("SELECT value FROM kv WHERE key = 'retention.compacted_through'")
        return float(json.loads(raw)[0]) if raw else 0.0

    last = query("SELECT MAX(completed_at) FROM runs INDEXED BY runs_finished "
                 "WHERE completed_at <= ?", (cutoff,))
    deadline = time.monotonic() + timeout
    while last is not None and mark() < last and time.monotonic() < deadline:
        time.sleep(2.0)
    count = ("SELECT COUNT(*) FROM runs INDEXED BY runs_finished WHERE completed_at <= ?")
    finished = query(count, (cutoff,))
    share = query(count, (mark(),)) / finished if finished else 1.0
    return {"s": time.perf_counter() - started, "share": share}


def db_bytes(home: Path) -> dict[str, int]:
    db = home / "trigger-local.db"
    return {p.name: p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists()}


def table_sizes(home: Path) -> list[tuple[str, int, int]]:
    """(table, bytes of the table and its indexes, rows) from `dbstat`, largest first; read-only
    and with the daemon stopped, so the WAL is checkpointed into the file."""
    con = sqlite3.connect(f"file:{home / 'trigger-local.db'}?mode=ro", uri=True)
    try:
        owner = dict(con.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN "
                                 "('table', 'index')"))
        sizes: dict[str, int] = {}
        for name, size in con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"):
            table = owner.get(name, name)
            sizes[table] = sizes.get(table, 0) + int(size)
        top = sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
        return [(t, size, int(con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0])
                 if t in owner else 0)
                for t, size in top]
    except sqlite3.OperationalError as exc:  # an SQLite built without dbstat
        return [(f"(dbstat unavailable: {exc})", 0, 0)]
    finally:
        con.close()
