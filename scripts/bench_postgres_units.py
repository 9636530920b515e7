#!/usr/bin/env python3
"""The time of each unit of a run's life on PostgreSQL, in one process (issue #14):

    python scripts/bench_postgres_units.py                 # 300 runs, medians in ms
    python scripts/bench_postgres_units.py --runs 500 --sqlite

An engine on a private cluster (tests/pg_cluster.py, fsync off) triggers, dequeues, starts and
finishes one run at a time, and then dequeues once more (finding nothing, as most of the
dispatcher's dequeues do); each call is timed. With no daemon, HTTP or task process around it,
what is left is the engine, the store and the server ("trigger and start": a trigger on an
idle daemon that starts its run in its own transaction, engine/starting.py): a change to the
store shows here without the noise of a whole daemon on a shared machine
(scripts/bench_postgres.py measures that). It also says the CPU time per run of this process
(the engine, the store, the driver) and of the server's processes (from /proc): on a loaded
machine, wall times move with the load, CPU times much less. `--sqlite` times the same on a
SQLite file, for the comparison. `--trace` also times each round trip of "trigger and start"
(each statement the driver sends, in order: the median of each, and the statement's start),
which says where that unit's time goes (docs/scaling.md, "Where the time goes").
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

from tests.engine_support import T0, WarmPlaces, open_engine  # noqa: E402
from trigger_local.clock import FakeClock  # noqa: E402
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest  # noqa: E402
from trigger_local.store.models import TaskDef  # noqa: E402

UNITS = ("trigger", "dequeue", "start", "finish", "idle dequeue", "trigger and start")
#: the driver's calls that each send statements and wait for the answer: one round trip each
SENDS = ("execute", "executemany", "fetch", "fetchrow", "fetchval")


class Trace:
    """Each round trip of the calls made while `on`: (the statement's start, its time in ms),
    by its place in the unit (`--trace`)."""

    def __init__(self) -> None:
        self.on = False
        self.unit: list[tuple[str, float]] = []
        self.by_place: dict[int, tuple[str, list[float]]] = {}

    def install(self) -> None:
        import asyncpg
        for name in SENDS:
            original = getattr(asyncpg.Connection, name)

            async def timed_call(conn: Any, *args: Any, _original: Any = original,
                                 **kwargs: Any) -> Any:
                began = time.perf_counter()
                try:
                    return await _original(conn, *args, **kwargs)
                finally:
                    if self.on:
                        text = " ".join(str(args[0] if args else "").split())[:60]
                        self.unit.append((text, (time.perf_counter() - began) * 1000))
            setattr(asyncpg.Connection, name, timed_call)

    def end_unit(self) -> None:
        for place, (text, ms) in enumerate(self.unit):
            self.by_place.setdefault(place, (text, []))[1].append(ms)
        self.unit, self.on = [], False

    def medians(self) -> list[dict[str, Any]]:
        return [{"statement": text, "median_ms": round(median(ms), 3), "n": len(ms)}
                for text, ms in self.by_place.values()]


TRACE = Trace()


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
    # the same run's trigger, dequeue and start as one unit, on an idle daemon
    engine.ctx.placer = WarmPlaces()
    TRACE.on = True
    result = await timed(times, "trigger and start",
                         lambda: engine.trigger(TriggerRequest(task_id="t")))
    TRACE.end_unit()
    engine.ctx.placer = None
    assert result.run.status == "EXECUTING"
    await engine.finish_attempt(result.run.id, 1, AttemptOutcome(ok=True))


def server_cpu_s(cluster: Cluster | None) -> float:
    """The CPU time of the cluster's processes so far (the postmaster and its children)."""
    if cluster is None:
        return 0.0
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(entry.name) == postmaster or int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


async def measure(url: str | None, runs: int, cluster: Cluster | None = None
                  ) -> dict[str, Any]:
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
            TRACE.by_place.clear()
            cpu, server = time.process_time(), server_cpu_s(cluster)
            for _ in range(runs):
                await one_run(engine, times)
            cpu, server = time.process_time() - cpu, server_cpu_s(cluster) - server
        finally:
            await engine.store.close()
    out: dict[str, Any] = {unit: round(median(ts), 3) for unit, ts in times.items()}
    out["client_cpu_per_run"] = round(cpu / runs * 1000, 3)
    out["server_cpu_per_run"] = round(server / runs * 1000, 3)
    if url and TRACE.by_place:
        out["trigger_and_start_round_trips"] = TRACE.medians()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--sqlite", action="store_true", help="SQLite too, for the comparison")
    parser.add_argument("--trace", action="store_true",
                        help="time each round trip of a trigger that starts its run")
    args = parser.parse_args()
    if args.trace:
        TRACE.install()
    bin_dir = pg_bin()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries: run scripts/setup-postgres.sh")
    load_before = os.getloadavg()
    cluster = Cluster(bin_dir).start()
    try:
        results = {"postgresql": asyncio.run(measure(cluster.fresh_url(), args.runs,
                                                     cluster))}
    finally:
        cluster.stop()
    if args.sqlite:
        results["sqlite"] = asyncio.run(measure(None, args.runs))
    print(json.dumps({"median_ms": results, "runs": args.runs,
                      "load_average_before": [round(x, 2) for x in load_before],
                      "load_average": [round(x, 2) for x in os.getloadavg()]}, indent=2))


if __name__ == "__main__":
    main()
