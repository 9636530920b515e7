#!/usr/bin/env python3
"""Disk per finished no-op run (issue #17, docs/benchmarks.md "Disk per finished run").

    python scripts/bench_disk.py                 # 20,000 runs, a temporary file
    python scripts/bench_disk.py --runs 5000 --db /tmp/disk.db --keep

Each run is triggered, dequeued, started and finished through the engine on a real SQLite file
(a fake clock); then the clock moves past `compact_after_s`, `prune` runs until nothing is left
to compact, `reclaim` returns the freed pages, and `dbstat` says where the bytes are: the file
per run, and per run the runs table, each of its indexes, the attempts and every other table
(grouped) with its indexes. Prints Markdown.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trigger_local.clock import FakeClock  # noqa: E402
from trigger_local.config import DaemonSettings  # noqa: E402
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest  # noqa: E402
from trigger_local.store import SqliteStore  # noqa: E402
from trigger_local.store.models import TaskDef, Version  # noqa: E402

T0 = 1_700_000_000.0
BATCH = 200  # runs triggered, dequeued, started and finished together


async def build(db: str, runs: int) -> None:
    """`runs` finished no-op runs in `db`, compacted, with the freed pages returned."""
    clock = FakeClock(T0)
    store = SqliteStore(db)
    await store.open()
    engine = Engine(store, clock, DaemonSettings(home=Path(db).parent))
    await engine.register_version(Version(
        id="version_1", project_dir="/proj", created_at=T0,
        tasks=[TaskDef(task_id="noop", queue="task/noop")]))
    done = 0
    while done < runs:
        n = min(BATCH, runs - done)
        await engine.trigger_many([TriggerRequest(task_id="noop") for _ in range(n)])
        finished = 0
        while finished < n:  # a queue's concurrency limit hands out a few at a time
            for run in await engine.dequeue(n):
                assert await engine.start_attempt(run, "worker_bench", 1) is not None
                await engine.finish_attempt(run.id, 1, AttemptOutcome(ok=True, output="null"))
                finished += 1
        done += n
        clock.advance(0.05)
    clock.advance(engine.ctx.settings.compact_after_s + 1)
    while (await engine.prune(1000))[0]:
        pass
    before = -1
    while (pages := _free_pages(db)) and pages != before:
        before = pages
        await store.reclaim()
    await store.close()


def _free_pages(db: str) -> int:
    con = sqlite3.connect(db)
    try:
        return int(con.execute("PRAGMA freelist_count").fetchone()[0])
    finally:
        con.close()


def breakdown(db: str) -> tuple[int, int, list[tuple[str, str, int]]]:
    """(file bytes, runs, [(table, object, bytes)]) from `dbstat`, largest first."""
    con = sqlite3.connect(db)
    try:
        owner = {name: table for name, table in
                 con.execute("SELECT name, tbl_name FROM sqlite_master")}
        sizes = [(owner.get(name, name), name, int(size)) for name, size in
                 con.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")]
        runs = int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
    finally:
        con.close()
    return os.path.getsize(db), runs, sorted(sizes, key=lambda s: -s[2])


def report(db: str, seconds: float) -> str:
    size, runs, sizes = breakdown(db)
    per = max(runs, 1)
    lines = [f"{runs:,} finished no-op runs, built in {seconds:.1f} s: "
             f"**{size / per:,.0f} B per run** on disk ({size:,} B file)", "",
             "| object | table | bytes per run |", "|---|---|---|"]
    others = 0
    for table, name, nbytes in sizes:
        if table in ("runs", "attempts"):
            lines.append(f"| {name} | {table} | {nbytes / per:,.1f} |")
        else:
            others += nbytes
    lines.append(f"| everything else | | {others / per:,.1f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=20_000)
    ap.add_argument("--db", help="the SQLite file to build (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep --db afterwards")
    args = ap.parse_args()
    tmp = None if args.db else tempfile.mkdtemp(prefix="bench-disk-")
    db = args.db or os.path.join(tmp or "", "disk.db")
    if os.path.exists(db):
        print(f"{db} exists: give a new path", file=sys.stderr)
        return 1
    t = time.monotonic()
    asyncio.run(build(db, args.runs))
    print(report(db, time.monotonic() - t))
    if not args.keep:
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(db + suffix):
                os.remove(db + suffix)
        if tmp:
            os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
