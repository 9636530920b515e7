#!/usr/bin/env python3
"""trigger-local benchmark: starts a daemon in a temporary home and measures it.

    python scripts/bench.py                 # everything, prints a table and JSON
    python scripts/bench.py --only throughput --runs 2000
    python scripts/bench.py --only timers --waits 100     # 100 wait.for_(1 s) at once

Figures (issue #2): end-to-end throughput of no-op runs triggered in batches; trigger→start
latency on an idle daemon with a warm process; resume latency of a held `wait.for_(seconds=1)`;
daemon RSS with 1,000 and 10,000 queued runs; the daemon's CPU per run during the warm burst;
and (`timers`, issue #13) the lateness of `--waits` runs doing `wait.for_(seconds=1)` at the same
time (in a daemon of their own, with room for all of them: concurrency and max_processes =
`--waits`). Record results in docs/benchmarks.md.

    python scripts/bench.py --only single --runs 2000 --concurrency 4   # one HTTP trigger a run
    python scripts/bench.py --only single --clients 4                  # four clients at once

`single` (issue #13): no-op runs each triggered with its own HTTP request, as the peers enqueue
one by one; runs/s until all completed, the trigger's answer time, the daemon's CPU per run.

    python scripts/bench.py --only waiting --waiting 1000 --wait-s 60

`waiting` (issue #13): N runs that each `wait.for_(seconds=S)`, triggered in batches; how long
until all N wait at once, the task processes holding them, the total RSS of the daemon and its
task processes then, and how late the runs finished after their wait.

    TRIGGER_LOCAL_WORKER_CHANNEL=off python scripts/bench.py --only throughput

The environment reaches the task processes: `off` keeps shared processes on HTTP polls instead
of their channel (docs/worker-protocol.md, "The channel"), to compare the two.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_daemon import (  # noqa: E402 - the harness
    PROBE_SETTLE_S,
    Bench,
    cpu_s_of,
    pct,
    rss_mib_of,
    worker_pids,
)


def _burst(b: Bench, runs: int, batch: int) -> float:
    start = time.perf_counter()
    for _ in range(runs // batch):
        b.batch("noop", batch)
    while b.active_runs():
        time.sleep(0.05)
    return time.perf_counter() - start


def bench_throughput(b: Bench, runs: int, batch: int) -> dict[str, Any]:
    """Twice: cold (the daemon starts its task processes during the burst: each costs a Python
    start-up and the SDK's imports) and then warm (the same processes take the next burst)."""
    b.wait_done(b.trigger("noop"))
    cold = _burst(b, runs, batch)
    cpu, task_cpu = b.cpu_s(), _task_cpu_s(b)
    warm = _burst(b, runs, batch)
    cpu = b.cpu_s() - cpu  # the bench's status polls (20 a second) are in it too
    task_cpu = _task_cpu_s(b) - task_cpu
    return {"runs": runs, "batch": batch, "cold_runs_per_s": round(runs / cold, 1),
            "warm_runs_per_s": round(runs / warm, 1),
            "warm_daemon_cpu_ms_per_run": round(cpu * 1000 / runs, 3),
            "warm_task_process_cpu_ms_per_run": round(task_cpu * 1000 / runs, 3)}


def _task_cpu_s(b: Bench) -> float:
    """The CPU time (user + system) of the daemon's task processes so far: those that exited
    (a process retires after `warm_runs_per_process` runs), which the daemon reaped, and the
    live ones; the difference over a burst is its runs' share, the start-ups of the processes
    that replaced retired ones included."""
    total = cpu_s_of(b.proc.pid, reaped=True)
    for pid in worker_pids(b.home):
        with contextlib.suppress(OSError):  # (it exited meanwhile)
            total += cpu_s_of(pid)
    return total


def bench_single(b: Bench, runs: int, clients: int) -> dict[str, Any]:
    """`runs` no-op runs, each its own HTTP trigger (issue #13's "one HTTP trigger per run":
    how Huey, Celery and Dramatiq enqueue, one call per task), sent one after another by each
    of `clients` clients at once (1: like ../shared/peers' `trigger-single`); runs/s counts
    until every run completed. The trigger's answer time is each request's, client side."""
    b.wait_done(b.trigger("noop"))
    key = b.http.headers["Authorization"]
    answers: list[float] = []
    per_client = [runs // clients + (i < runs % clients) for i in range(clients)]

    def client(n: int) -> None:
        with httpx.Client(base_url=b.url, headers={"Authorization": key}, timeout=60) as http:
            body = {"payload": "null", "options": {"payloadType": "application/json"}}
            for _ in range(n):
                sent = time.perf_counter()
                http.post("/api/v1/tasks/noop/trigger", json=body).raise_for_status()
                answers.append((time.perf_counter() - sent) * 1000)

    cpu = b.cpu_s()
    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in per_client]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent_s = time.perf_counter() - start
    while b.active_runs():
        time.sleep(0.01)
    took = time.perf_counter() - start
    cpu = b.cpu_s() - cpu
    return {"runs": runs, "clients": clients, "runs_per_s": round(runs / took, 1),
            "triggers_per_s": round(runs / sent_s, 1),
            "answer_p50_ms": round(pct(answers, 50), 2),
            "answer_p99_ms": round(pct(answers, 99), 2),
            "daemon_cpu_ms_per_run": round(cpu * 1000 / runs, 3)}


def bench_start_latency(b: Bench, samples: int) -> dict[str, Any]:
    b.wait_done(b.trigger("stamp"))
    latencies = []
    for _ in range(samples):
        sent = time.time()
        run = b.wait_done(b.trigger("stamp"), first_poll_s=PROBE_SETTLE_S)
        latencies.append((run["output"]["started"] - sent) * 1000)
    return {"samples": samples, "p50_ms": round(pct(latencies, 50), 2),
            "p99_ms": round(pct(latencies, 99), 2)}


def bench_resume(b: Bench, samples: int, at_once: int = 5) -> dict[str, Any]:
    """Rounds of `at_once` runs waiting together, so processes are warm and the figure is the
    resume path, not process start-up."""
    late: list[float] = []
    while len(late) < samples:
        ids = [b.trigger("wait-1s") for _ in range(at_once)]
        late += [b.wait_done(i)["output"]["late_s"] * 1000 for i in ids]
    return {"samples": len(late), "waiting_at_once": at_once, "p50_ms": round(pct(late, 50), 2),
            "p99_ms": round(pct(late, 99), 2)}


def bench_timers(tmp: Path, waits: int) -> dict[str, Any]:
    """`waits` runs each doing `wait.for_(seconds=1)` at the same time: how late each resumes
    (resume time − its own due time). Without CRIU each waiting run holds its process, so the
    daemon gets room for all of them; their start-up is spread, their due times with it."""
    b = Bench(tmp, concurrency=waits, max_processes=waits)
    try:
        b.wait_done(b.trigger("wait-1s"))
        items = [{"task": "wait-1s", "payload": "null",
                  "options": {"payloadType": "application/json"}}] * waits
        cpu = b.cpu_s()
        ids = b.http.post("/api/v1/tasks/batch", json={"items": items}).json()["runs"]
        b.wait_idle(timeout=300)  # one cheap request every 50 ms: polling each run would load
        cpu = b.cpu_s() - cpu  # the daemon's, for the whole run: start, wait, resume, finish
        late = [b.wait_done(r["id"])["output"]["late_s"] * 1000 for r in ids]  # the daemon
        status = b.http.get("/api/v1/local/status").json()
    finally:
        b.close()
    # who ended the waits: the processes' own timers (their timerDue frames, docs/waits.md) or
    # the daemon's (its resume messages); a wait both ended counts in both
    return {"waiting_at_once": waits, "p50_ms": round(pct(late, 50), 2),
            "p99_ms": round(pct(late, 99), 2), "max_ms": round(max(late), 2),
            "daemon_cpu_ms_per_run": round(cpu * 1000 / waits, 2),
            "timer_due_frames": status["channelFrames"].get("timerDue", 0),
            "resume_messages": status["executor"]["resumes"]["messages"]}


def bench_rss(b: Bench) -> dict[str, Any]:
    b.http.post("/api/v1/queues/noop/pause",
                json={"type": "task", "action": "pause"}).raise_for_status()
    out = {"idle_mib": round(b.rss_mib(), 1)}
    queued = 0
    for target in (1000, 10000):
        while queued < target:
            n = min(500, target - queued)
            b.batch("noop", n)
            queued += n
        out[f"queued_{target}_mib"] = round(b.rss_mib(), 1)
    b.http.post("/api/v1/queues/noop/pause", json={"type": "task", "action": "resume"})
    return out


def bench_waiting(b: Bench, count: int, wait_s: float, finish: bool = True) -> dict[str, Any]:
    """`count` runs waiting `wait_s` at once: a waiting run of an async task is a coroutine in a
    shared task process, not a process of its own (docs/worker-protocol.md). `finish`: wait for
    them all to complete too (else the figures are taken and the daemon stopped)."""
    start = time.perf_counter()
    sent = 0
    while sent < count:
        n = min(500, count - sent)
        b.batch("wait-long", n, {"seconds": wait_s})
        sent += n
    peak_waiting = 0
    while True:
        counts = b.http.get("/api/v1/local/status").json()["runs"]
        peak_waiting = max(peak_waiting, counts.get("WAITING", 0))
        if peak_waiting >= count or time.perf_counter() - start > wait_s:
            break
        time.sleep(0.2)
    all_waiting_s = time.perf_counter() - start
    pids = worker_pids(b.home)
    daemon_mib = b.rss_mib()
    tasks_mib = sum(rss_mib_of(p) for p in pids)
    out = {"runs": count, "wait_s": wait_s, "peak_waiting_at_once": peak_waiting,
           "all_waiting_after_s": round(all_waiting_s, 1), "task_processes": len(pids),
           "daemon_mib": round(daemon_mib, 1), "task_processes_mib": round(tasks_mib, 1),
           "total_mib": round(daemon_mib + tasks_mib, 1)}
    if finish:
        while b.active_runs():
            time.sleep(0.5)
        out["all_done_after_s"] = round(time.perf_counter() - start, 1)
    return out


def shared(b: Bench, only: set[str], args: argparse.Namespace, results: dict[str, Any]) -> None:
    """The figures measured on one daemon, in order."""
    try:
        if "latency" in only:
            results["trigger_to_start"] = bench_start_latency(b, args.samples)
        if "throughput" in only:
            results["throughput"] = bench_throughput(b, args.runs, args.batch)
        if "single" in only:
            results["single_triggers"] = bench_single(b, args.runs, args.clients)
        if "resume" in only:
            results["resume_after_wait_1s"] = bench_resume(b, min(args.samples, 50))
        if "rss" in only:
            results["daemon_rss"] = bench_rss(b)
        if "waiting" in only and args.only:  # minutes: only when asked for
            results["waiting"] = bench_waiting(b, args.waiting, args.wait_s, not args.no_finish)
    finally:
        b.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only",
                        choices=["throughput", "single", "latency", "resume", "rss", "timers",
                                 "waiting"],
                        action="append")
    parser.add_argument("--waits", type=int, default=100, help="runs waiting at once (timers)")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=25)
    parser.add_argument("--clients", type=int, default=1,
                        help="single: clients triggering at once, each one request after another")
    parser.add_argument("--waiting", type=int, default=1000, help="runs waiting at once")
    parser.add_argument("--wait-s", type=float, default=60.0, help="how long each waits")
    parser.add_argument("--no-finish", action="store_true",
                        help="waiting: stop once all wait, without waiting for them to complete")
    args = parser.parse_args()
    only = set(args.only or ["throughput", "latency", "resume", "rss", "timers"])
    results: dict[str, Any] = {"machine": f"{platform.machine()} {os.cpu_count()} cores, "
                                          f"{platform.platform()}",
                               "python": platform.python_version(),
                               "date": time.strftime("%Y-%m-%d")}
    if only - {"timers"}:
        with tempfile.TemporaryDirectory(prefix="trigger-local-bench-") as tmp:
            shared(Bench(Path(tmp), args.concurrency), only, args, results)
    if "timers" in only:
        with tempfile.TemporaryDirectory(prefix="trigger-local-bench-") as tmp:
            results["wait_1s_lateness"] = bench_timers(Path(tmp), args.waits)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
