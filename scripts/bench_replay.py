#!/usr/bin/env python3
"""trigger-local replay benchmark (issue #12, docs/durability.md): how long a replayed attempt
takes to walk 100 recorded steps, and what recording them cost the first time.

    python scripts/bench_replay.py                  # 20 samples of 100 steps
    python scripts/bench_replay.py --samples 50 --steps 200

Each sample is one run of a task that makes `--steps` `step.run` calls and fails on its first
attempt; the retry replays them (each comes back from the assignment's records, no round trip).
Both loops are timed inside the task with `time.perf_counter`. The target: 100 steps replay in
≤ 50 ms. Record results in docs/benchmarks.md with the machine's load (`uptime`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_daemon  # noqa: E402 - the daemon harness (scripts/bench_daemon.py)

TASKS = '''
import time
from trigger_local import task, step, Retry

@task(id="steps", retry=Retry(max_attempts=2, min_timeout_s=0, max_timeout_s=0,
                              randomize=False))
async def steps(payload, ctx):
    start = time.perf_counter()
    for i in range(payload["steps"]):
        await step.run(f"step-{i}", lambda i=i: {"i": i})
    took_ms = (time.perf_counter() - start) * 1000
    if ctx.attempt.number == 1:
        raise RuntimeError(f"recorded in {took_ms:.3f} ms")
    return {"replay_ms": took_ms}
'''


def sample(b: bench_daemon.Bench, steps: int) -> dict[str, float]:
    run = b.wait_done(b.trigger("steps", {"steps": steps}), timeout=120)
    if run["status"] != "COMPLETED":
        raise SystemExit(f"the replay run did not complete: {run['status']} {run.get('error')}")
    recorded = run["attempts"][0]["error"]["message"].split()[2]
    return {"replay_ms": float(run["output"]["replay_ms"]), "record_ms": float(recorded)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()
    bench_daemon.TASKS = TASKS
    with tempfile.TemporaryDirectory(prefix="tl-bench-replay-") as tmp:
        b = bench_daemon.Bench(Path(tmp), concurrency=1)
        try:
            sample(b, args.steps)  # warm: the task process is started and imported
            found = [sample(b, args.steps) for _ in range(args.samples)]
        finally:
            b.close()
    replay = sorted(s["replay_ms"] for s in found)
    record = sorted(s["record_ms"] for s in found)
    result: dict[str, Any] = {
        "steps": args.steps, "samples": args.samples,
        "replay_ms": {"p50": round(bench_daemon.pct(replay, 50), 3),
                      "p95": round(bench_daemon.pct(replay, 95), 3), "max": round(replay[-1], 3)},
        "record_ms": {"p50": round(bench_daemon.pct(record, 50), 1),
                      "p95": round(bench_daemon.pct(record, 95), 1)},
        "target_ms": 50, "meets_target": bench_daemon.pct(replay, 95) <= 50,
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "load": os.getloadavg()[0],
    }
    print(f"{args.steps} recorded steps replay in {result['replay_ms']['p50']} ms (p50), "
          f"{result['replay_ms']['p95']} ms (p95); recording them took "
          f"{result['record_ms']['p50']} ms (p50); load {result['load']:.2f}")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
