#!/usr/bin/env python3
"""SQLite vs PostgreSQL, one daemon vs two (issue #14), side by side in one run:

    python scripts/bench_postgres.py                      # prints a table and JSON
    python scripts/bench_postgres.py --runs 2000 --samples 200

For each setup — `sqlite` (one daemon, the home's file), `pg-1` (one daemon on PostgreSQL),
`pg-2` (two daemons, two homes, on one PostgreSQL database) — it measures the warm no-op
throughput (runs triggered in batches, through every daemon of the setup in turn, until all
have finished) and trigger→start latency p50/p99 of a task that stamps its start time (each
trigger sent to the next daemon of the setup; the probe polls the run only 20 ms after the
trigger's answer, so that its reads are not what the start waits behind). PostgreSQL is a
private cluster started for the run (tests/pg_cluster.py: Debian's postgresql,
scripts/setup-postgres.sh), with fsync off like the tests' — the figures are the daemons',
not a disk's. Every daemon runs on this machine.
On PostgreSQL it also counts the transactions the database refused or rolled back per run
(`pg_stat_database`'s rollbacks over the whole setup, read once its daemons have closed: two
daemons' serializable transactions refusing each other show there; docs/scaling.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "tests")]

from bench_daemon import PROBE_SETTLE_S, Bench, pct  # noqa: E402 - scripts/bench_daemon.py: a daemon in a temporary home
from pg_cluster import Cluster, pg_bin  # noqa: E402 - tests/pg_cluster.py


def start(tmp: Path, count: int, url: str, concurrency: int) -> list[Bench]:
    daemons = []
    for n in range(count):
        os.environ.pop("TRIGGER_LOCAL_DATABASE_URL", None)
        if url:
            os.environ["TRIGGER_LOCAL_DATABASE_URL"] = url
        home = tmp / f"d{n}"
        home.mkdir()
        daemons.append(Bench(home, concurrency))
    os.environ.pop("TRIGGER_LOCAL_DATABASE_URL", None)
    return daemons


def active(daemons: list[Bench]) -> int:
    return daemons[0].active_runs()  # one database: any daemon counts every run


def throughput(daemons: list[Bench], runs: int, batch: int) -> float:
    for d in daemons:  # warm: each daemon has its task processes before the clock starts
        d.wait_done(d.trigger("noop"))
    began = time.perf_counter()
    for i in range(runs // batch):
        daemons[i % len(daemons)].batch("noop", batch)
    while active(daemons):
        time.sleep(0.02)
    return runs / (time.perf_counter() - began)


def latency(daemons: list[Bench], samples: int) -> tuple[float, float]:
    for d in daemons:
        d.wait_done(d.trigger("stamp"))
    found = []
    for i in range(samples):
        d = daemons[i % len(daemons)]
        sent = time.time()
        run = d.wait_done(d.trigger("stamp"), first_poll_s=PROBE_SETTLE_S)
        found.append((run["output"]["started"] - sent) * 1000)
    return pct(found, 50), pct(found, 99)


def rollbacks(url: str) -> int:
    """The database's rolled-back transactions so far (a closed session's are counted)."""
    import asyncpg

    async def read() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT xact_rollback FROM pg_stat_database "
                                           "WHERE datname = current_database()"))
        finally:
            await conn.close()
    return asyncio.run(read())


def measure(name: str, count: int, url: str, args: argparse.Namespace) -> dict[str, Any]:
    before = rollbacks(url) if url else 0
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        daemons = start(Path(tmp), count, url, args.concurrency)
        try:
            rate = throughput(daemons, args.runs, args.batch)
            p50, p99 = latency(daemons, args.samples)
        finally:
            for d in daemons:
                d.close()
    runs = args.runs + args.samples + 2 * count  # and each daemon's two warm-up runs
    refused = (rollbacks(url) - before) / runs if url else 0.0
    return {"setup": name, "daemons": count, "noop_runs_per_s": round(rate, 1),
            "start_p50_ms": round(p50, 2), "start_p99_ms": round(p99, 2),
            "rollbacks_per_run": round(refused, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=25)
    args = parser.parse_args()
    bin_dir = pg_bin()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries: run scripts/setup-postgres.sh")
    load_before = os.getloadavg()  # the figures mean little on a busy machine: say how busy
    cluster = Cluster(bin_dir).start()
    try:
        results = [measure("sqlite", 1, "", args),
                   measure("pg-1", 1, cluster.fresh_url(), args),
                   measure("pg-2", 2, cluster.fresh_url(), args)]
    finally:
        cluster.stop()
    load = os.getloadavg()
    print(f"{'setup':<8}{'daemons':>8}{'no-op runs/s':>14}{'start p50 ms':>14}"
          f"{'start p99 ms':>14}{'rollbacks/run':>15}")
    for r in results:
        print(f"{r['setup']:<8}{r['daemons']:>8}{r['noop_runs_per_s']:>14}"
              f"{r['start_p50_ms']:>14}{r['start_p99_ms']:>14}{r['rollbacks_per_run']:>15}")
    print(json.dumps({"results": results, "runs": args.runs, "samples": args.samples,
                      "load_average_before": [round(x, 2) for x in load_before],
                      "load_average": [round(x, 2) for x in load]}, indent=2))


if __name__ == "__main__":
    main()
