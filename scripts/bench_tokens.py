"""Waitpoint token benchmarks (issue #3), a sibling of scripts/bench.py using its daemon harness.

  python scripts/bench_tokens.py [--samples 50] [--waiting 300] [--max-processes 400]

1. resume latency: a run held in its process on `wait.for_token`; from just before the complete
   request to the task's first line after the wait (the task stamps time.time()).
2. many waiting: N runs wait on N tokens at once (each holds a task process with this
   executor), then all are completed through their callback URLs; reports the seconds until
   all finished and the memory of the daemon and of the task processes."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_daemon import Bench, pct  # noqa: E402 - the sibling script's harness

TOKEN_TASKS = '''
import time
from trigger_local import task, wait

@task(id="token-stamp")
async def token_stamp(payload, ctx):
    result = await wait.for_token(payload["token"])
    return {"resumed": time.time(), "ok": result.ok}
'''


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def task_process_rss_mib(home: Path) -> tuple[int, float]:
    marker = f"TRIGGER_LOCAL_HOME={home}".encode()
    count, total = 0, 0
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            environ = (pid_dir / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in environ and any(e.startswith(b"TRIGGER_LOCAL_WORKER_ID=") for e in environ):
            count, total = count + 1, total + rss_kib(int(pid_dir.name))
    return count, round(total / 1024, 1)


def wait_status(b: Bench, run_id: str, status: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (run := b.run(run_id))["status"] != status:
        if time.monotonic() > deadline:
            raise SystemExit(f"{run_id} did not become {status}: {run['status']}")
        time.sleep(0.005)
    return run


def bench_token_resume(b: Bench, samples: int) -> dict[str, Any]:
    latencies = []
    for _ in range(samples + 1):
        token = b.http.post("/api/v1/waitpoints/tokens", json={}).json()
        run_id = b.trigger("token-stamp", {"token": token["id"]})
        wait_status(b, run_id, "WAITING")
        sent = time.time()
        b.http.post(f"/api/v1/waitpoints/tokens/{token['id']}/complete",
                    json={"data": 1}).raise_for_status()
        latencies.append((b.wait_done(run_id)["output"]["resumed"] - sent) * 1000)
    latencies = latencies[1:]  # the first one pays for the process start
    return {"samples": samples, "p50_ms": round(pct(latencies, 50), 2),
            "p99_ms": round(pct(latencies, 99), 2)}


def bench_many_waiting(b: Bench, count: int) -> dict[str, Any]:
    tokens = [b.http.post("/api/v1/waitpoints/tokens", json={}).json() for _ in range(count)]
    runs = [b.trigger("token-stamp", {"token": t["id"]}) for t in tokens]
    start = time.monotonic()
    deadline = start + 600
    while (waiting := b.http.get("/api/v1/local/status").json()["runs"].get("WAITING", 0)) < count:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    all_waiting_s = time.monotonic() - start
    procs, procs_mib = task_process_rss_mib(b.home)
    out = {"runs": count, "waiting": waiting, "seconds_until_all_waiting": round(all_waiting_s, 1),
           "daemon_rss_mib": round(b.rss_mib(), 1), "task_processes": procs,
           "task_processes_rss_mib": procs_mib}
    start = time.monotonic()
    with httpx.Client(timeout=60) as plain, ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda t: plain.post(t["url"], json={"ok": True}).raise_for_status(), tokens))
    posted_s = time.monotonic() - start
    while b.active_runs():
        time.sleep(0.05)
    out.update(callbacks_posted_s=round(posted_s, 2),
               all_completed_s=round(time.monotonic() - start, 2),
               completed=sum(1 for r in runs if b.run(r)["status"] == "COMPLETED"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--waiting", type=int, default=300)
    parser.add_argument("--max-processes", type=int, default=400)
    args = parser.parse_args()
    os.environ["TRIGGER_LOCAL_MAX_PROCESSES"] = str(args.max_processes)
    with tempfile.TemporaryDirectory() as tmp:
        b = Bench(Path(tmp), concurrency=max(args.max_processes, 100))
        (b.project / "trigger" / "tokens.py").write_text(textwrap.dedent(TOKEN_TASKS))
        b.http.post("/api/v1/local/versions", json={"projectDir": str(b.project),
                                                    "dirs": ["trigger"]}).raise_for_status()
        try:
            result = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs",
                      "token_resume": bench_token_resume(b, args.samples),
                      "many_waiting": bench_many_waiting(b, args.waiting)}
        finally:
            b.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
