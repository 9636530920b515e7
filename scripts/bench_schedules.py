#!/usr/bin/env python3
"""Benchmark: N active schedules firing on the same tick (issue #6).

    python scripts/bench_schedules.py [--schedules 1000] [--concurrency 50]

Starts a daemon in a temporary home, indexes one no-op `schedules.task`, creates N imperative
schedules whose 6-field cron (seconds last) fires at one second ~20 s ahead, and measures for
each run: tick → run created, and tick → run started (which includes waiting for one of the
`--concurrency` slots), plus the daemon's CPU time from the tick until every run completed.
Record results in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

TASKS = '''
from trigger_local import schedules

@schedules.task(id="tick")
async def tick(payload, ctx):
    return None
'''


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def wait_until(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "project" / "trigger").mkdir(parents=True)
        (tmp / "project" / "trigger" / "tick.py").write_text(TASKS)
        env = {**os.environ, "TRIGGER_LOCAL_CONCURRENCY": str(args.concurrency)}
        with (tmp / "daemon.log").open("wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "trigger_local.daemon", "--port", "0",
                                     "--home",
                                     str(tmp / "home")], env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
        try:
            print(json.dumps(run(tmp, proc.pid, args.schedules, args.concurrency), indent=2))
        finally:
            proc.terminate()
            proc.wait(30)


def run(tmp: Path, pid: int, n: int, concurrency: int) -> dict[str, object]:
    info = wait_until(lambda: (tmp / "home" / "daemon.json").exists(), 30, "daemon.json")
    assert info
    url = json.loads((tmp / "home" / "daemon.json").read_text())["url"]
    key = (tmp / "home" / "secret_key").read_text().strip()
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    http.post("/api/v1/local/versions", json={"projectDir": str(tmp / "project"),
                                              "dirs": ["trigger"]}
              ).raise_for_status()
    tick = datetime.fromtimestamp(int(time.time()) + 20 + n // 100, UTC)
    cron = f"{tick.minute} {tick.hour} * * * {tick.second}"
    t0 = time.monotonic()
    for i in range(n):
        http.post("/api/v1/schedules", json={"task": "tick", "cron": cron,
                                             "deduplicationKey": f"b{i}"}
                  ).raise_for_status()
    create_s = time.monotonic() - t0
    wait_until(lambda: time.time() >= tick.timestamp() - 1, 120, "the tick to approach")
    cpu_before = cpu_s(pid)

    def finished() -> list[dict] | None:
        page = http.get("/api/v1/runs", params={"filter[status]": "COMPLETED",
                                                "page[size]": 100}).json()
        if len(page["data"]) < 100:
            return None
        runs, params = [], {"page[size]": 100}
        while True:
            page = http.get("/api/v1/runs", params=params).json()
            runs += page["data"]
            if not page["pagination"].get("next"):
                break
            params = {"page[size]": 100, "page[after]": page["pagination"]["next"]}
        done = [r for r in runs if r["status"] == "COMPLETED"]
        return done if len(done) >= n else None

    runs = wait_until(finished, 300, "all scheduled runs")
    cpu_used = cpu_s(pid) - cpu_before
    created = [ts(r["createdAt"]) - tick.timestamp() for r in runs]
    started = [ts(r["startedAt"]) - tick.timestamp() for r in runs]
    last_done = max(ts(r["finishedAt"]) for r in runs) - tick.timestamp()
    return {"schedules": n, "concurrency": concurrency, "create_schedules_s": round(create_s, 2),
            "tick_to_created_ms": {"p50": round(pct(created, 50) * 1000, 1),
                                   "p99": round(pct(created, 99) * 1000, 1),
                                   "max": round(max(created) * 1000, 1)},
            "tick_to_started_ms": {"p50": round(pct(started, 50) * 1000, 1),
                                   "p99": round(pct(started, 99) * 1000, 1),
                                   "max": round(max(started) * 1000, 1)},
            "all_completed_after_s": round(last_done, 2),
            "daemon_cpu_s_tick_to_done": round(cpu_used, 2),
            "median_started_s": round(statistics.median(started), 3)}


if __name__ == "__main__":
    main()
