#!/usr/bin/env python3
"""The time of each unit of a run's life on PostgreSQL, in one process (issue #14):

    python scripts/bench_postgres_units.py                 # 300 runs, medians in ms
    python scripts/bench_postgres_units.py --runs 500 --sqlite

An engine on a private cluster (tests/pg_cluster.py, fsync off) triggers, dequeues, starts and
finishes one run at a time, and then dequeues once more (finding nothing, as most of the
dispatcher's dequeues do); each call is timed. With no daemon, HTTP or task process around it,
what is left is the engine, the store and the server: a change to the store shows here
without the noise of a whole daemon on a shared machine (scripts/bench_postgres.py measures
that). `--sqlite` times the same on a SQLite file, for the comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent / "tests")]

from pg_cluster import Cluster, pg_bin  # noqa: E402 - tests/pg_cluster.py

from tests.engine_support import T0, open_engine  # noqa: E402
from trigger_local.clock import FakeClock  # noqa: E402
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest  # noqa: E402
from trigger_local.store.models import TaskDef  # noqa: E402

UNITS = ("trigger", "dequeue", "start", "finish", "idle dequeue")


async def timed(times: dict[str, list[float]], unit: str,
                call: Callable[[], Awaitable[Any]]) -> Any:
    began = time.perf_counter()
    out = await call()
    times[unit].append((time.perf_counter() - began) * 1000)
    return out


async def one_run(engine: Engine, times: dict[str, list[float]]) -> None:
    await timed(times, "trigger", lambda: engine.trigger(TriggerRequest(task_id="t")))
    [run] = await timed(times, "dequeue", lambda: engine.dequeue(5))
    started = await timed(times, "start", lambda: engine.start_attempt(run, "worker_1", None))
    assert started is not None
    await timed(times, "finish", lambda: engine.finish_attempt(
        run.id, started[1].number, AttemptOutcome(ok=True)))
    assert await timed(times, "idle dequeue", lambda: engine.dequeue(5)) == []


async def measure(url: str | None, runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-units-") as tmp:
        store: Any = None
        if url:
            from trigger_local.store.postgres import PostgresStore
            store = PostgresStore(url, daemon_id="bench")
            await store.open()
        engine = await open_engine(Path(tmp), FakeClock(T0), store=store,
                                   tasks=[TaskDef(task_id="t", queue="task/t")])
        try:
            times: dict[str, list[float]] = {unit: [] for unit in UNITS}
            for _ in range(20):  # warm: caches, prepared statements
                await one_run(engine, times)
            times = {unit: [] for unit in UNITS}
            for _ in range(runs):
                await one_run(engine, times)
        finally:
            await engine.store.close()
    return {unit: round(median(ts), 3) for unit, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--sqlite", action="store_true", help="SQLite too, for the comparison")
    args = parser.parse_args()
    bin_dir = pg_bin()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries: run scripts/setup-postgres.sh")
    load_before = os.getloadavg()
    cluster = Cluster(bin_dir).start()
    try:
        results = {"postgresql": asyncio.run(measure(cluster.fresh_url(), args.runs))}
    finally:
        cluster.stop()
    if args.sqlite:
        results["sqlite"] = asyncio.run(measure(None, args.runs))
    print(json.dumps({"median_ms": results, "runs": args.runs,
                      "load_average_before": [round(x, 2) for x in load_before],
                      "load_average": [round(x, 2) for x in os.getloadavg()]}, indent=2))


if __name__ == "__main__":
    main()
