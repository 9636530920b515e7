#!/usr/bin/env python3
"""Realtime streams benchmark (issue #16): a task pipes N small chunks (an LLM-like token
stream) while a reader follows the stream live over the v1 SSE route.

    python scripts/bench_streams.py               # 10,000 chunks, prints JSON
    python scripts/bench_streams.py --chunks 2000

Figures, twice: chunk→reader latency (p50, p95, p99: the time the task produced a chunk to
the time the reader parsed it; one machine, one clock) and throughput (chunks / (last received
− first produced)). First with 1 ms between chunks (a fast LLM: latency is the figure), then
as fast as the task can yield (throughput is the figure: a producer faster than the pipeline
queues, so its latency is the queue's). Goals: p50 ≤ 5 ms and ≥ 20,000 chunks/s. The task
yields to its event loop after every chunk, as a task awaiting an LLM's tokens does, so the
runtime's sender can batch what piles up while a request is on the wire.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_daemon  # noqa: E402 - the daemon harness (scripts/bench_daemon.py)

from trigger_local.sdk.client import ApiClient  # noqa: E402
from trigger_local.sdk.realtime import read_stream  # noqa: E402

TASKS = '''
import asyncio, time
from trigger_local import task, streams

@task(id="tokens")
async def tokens(payload, ctx):
    async def produce():
        for i in range(payload["n"]):
            yield {"i": i, "t": time.time()}
            await asyncio.sleep(payload.get("gap_s", 0))
    await streams.pipe("llm", produce())
    return {"n": payload["n"]}
'''


async def _read(api: ApiClient, run_id: str, n: int) -> list[tuple[float, float]]:
    got: list[tuple[float, float]] = []
    async for chunk in read_stream(run_id, "llm", client=api, timeout_s=120):
        got.append((chunk["t"], time.time()))
        if len(got) == n:
            break
    return got


def measure(b: bench_daemon.Bench, n: int, gap_s: float) -> dict[str, Any]:
    api = ApiClient(b.url, b.http.headers["Authorization"].removeprefix("Bearer "))
    b.wait_done(b.trigger("tokens", {"n": 10}))  # a warm task process
    run_id = b.trigger("tokens", {"n": n, "gap_s": gap_s})
    got = asyncio.run(_read(api, run_id, n))
    b.wait_done(run_id)
    latencies = sorted((received - produced) * 1000 for produced, received in got)
    span = got[-1][1] - min(produced for produced, _ in got)
    return {"chunks": len(got), "p50_ms": round(bench_daemon.pct(latencies, 50), 2),
            "p95_ms": round(bench_daemon.pct(latencies, 95), 2),
            "p99_ms": round(bench_daemon.pct(latencies, 99), 2),
            "chunks_per_s": round(len(got) / span) if span > 0 else None,
            "produce_s": round(got[-1][0] - got[0][0], 3),
            "load": os.getloadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--latency-chunks", type=int, default=1_000)
    args = parser.parse_args()
    bench_daemon.TASKS = TASKS
    with tempfile.TemporaryDirectory(prefix="bench-streams-") as tmp:
        b = bench_daemon.Bench(Path(tmp), concurrency=4)
        try:
            results = {"latency (1 ms between chunks)": measure(b, args.latency_chunks, 0.001),
                       "throughput (as fast as the task yields)": measure(b, args.chunks, 0)}
            print(json.dumps(results, indent=2))
        finally:
            b.close()


if __name__ == "__main__":
    main()
