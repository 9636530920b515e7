#!/usr/bin/env python3
"""CRIU checkpoint benchmark (issue #4), process executor. Needs root and a working CRIU >= 4.

    python scripts/bench_criu.py                # everything
    python scripts/bench_criu.py --runs 50      # fewer waiting runs for the memory figure

1. raw `criu dump` / `criu restore -d` of a plain Python process holding ~14 MB, by hand;
2. the same through the daemon: a task waiting on a token is checkpointed, then restored (the
   dump_ms / restore_ms the executor records: the CRIU calls plus the executor's own checks);
3. N runs each waiting on a token: summed RSS of the task processes when held, against when
   checkpointed (0 processes), and the disk per checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench  # noqa: E402 - the daemon harness of scripts/bench.py

TASKS = '''
from trigger_local import task, wait

@task(id="tokenwait")
async def tokenwait(payload, ctx):
    ballast = "x" * (payload.get("mb", 0) * 1024 * 1024)
    result = await wait.for_token(payload["token"])
    return {"n": result.output, "kept": len(ballast)}
'''

RAW = "import time; ballast = 'x' * (14 * 1024 * 1024); time.sleep(100000)"


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000


def raw_criu(tmp: Path, samples: int) -> dict[str, Any]:
    dumps, restores = [], []
    for i in range(samples):
        images = tmp / f"raw{i}"
        images.mkdir()
        with (tmp / "raw.log").open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-c", RAW], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        time.sleep(0.5)  # let the interpreter allocate its ballast before dumping
        started = time.monotonic()
        subprocess.run(["criu", "dump", "-t", str(proc.pid), "-D", str(images)], check=True)
        dumps.append(_ms(started))
        proc.wait()
        started = time.monotonic()
        subprocess.run(["criu", "restore", "-d", "-D", str(images)], check=True)
        restores.append(_ms(started))
        os.kill(proc.pid, 9)
        shutil.rmtree(images)
    return {"dump_ms": round(statistics.median(dumps), 1), "restore_ms": round(statistics.median(restores), 1)}


def _token(b: bench.Bench) -> str:
    r = b.http.post("/api/v1/waitpoints/tokens", json={"timeout": "1h"})
    r.raise_for_status()
    return str(r.json()["id"])


def _checkpoints(b: bench.Bench, run_id: str) -> list[dict[str, Any]]:
    return list(b.http.get(f"/api/v1/runs/{run_id}/trace").json()["checkpoints"])


def _until(what: str, predicate: Any, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def executor_criu(tmp: Path, samples: int) -> dict[str, Any]:
    b = _daemon(tmp / "exec", checkpoints="auto", max_processes=10)
    try:
        dumps, restores = [], []
        for _ in range(samples):
            token = _token(b)
            run_id = b.trigger("tokenwait", {"token": token, "mb": 0})
            _until("a checkpoint", lambda: _checkpoints(b, run_id))  # noqa: B023
            b.http.post(f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": 1}).raise_for_status()
            b.wait_done(run_id)
            ck = _checkpoints(b, run_id)[0]
            dumps.append(ck["dump_ms"])
            restores.append(ck["restore_ms"])
        return {"dump_ms": round(statistics.median(dumps), 1), "restore_ms": round(statistics.median(restores), 1),
                "size_mib": round(ck["size_bytes"] / 2**20, 1)}
    finally:
        b.close()


def _worker_rss_mib(home: Path) -> tuple[int, float]:
    marker, total, count = f"TRIGGER_LOCAL_HOME={home}".encode(), 0, 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if marker in env and any(e.startswith(b"TRIGGER_LOCAL_WORKER_ID=") for e in env):
                status = Path(f"/proc/{pid}/status").read_text()
                total += int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS:")).split()[1])
                count += 1
        except (OSError, StopIteration):
            continue
    return count, total / 1024


def waiting_memory(tmp: Path, runs: int, mode: str) -> dict[str, Any]:
    b = _daemon(tmp / mode, checkpoints="auto" if mode == "checkpointed" else "off", max_processes=runs + 10)
    try:
        tokens = [_token(b) for _ in range(runs)]
        ids = [b.trigger("tokenwait", {"token": t}) for t in tokens]
        started = time.monotonic()
        if mode == "checkpointed":
            _until("every checkpoint", lambda: _status(b)["count"] >= runs)
        else:
            _until("every run waiting", lambda: b.http.get("/api/v1/local/status").json()["runs"].get("WAITING", 0)
                   >= runs)
        _until("the checkpointed processes to exit", lambda: mode != "checkpointed" or _worker_rss_mib(b.home)[0] <= 4)
        count, rss = _worker_rss_mib(b.home)
        out = {"processes": count, "task_rss_mib": round(rss, 1), "daemon_rss_mib": round(b.rss_mib(), 1),
               "settle_s": round(time.monotonic() - started, 1)}
        if mode == "checkpointed":
            st = _status(b)
            out["disk_mib_total"] = round(st["bytes"] / 2**20, 1)
            out["disk_mib_per_checkpoint"] = round(st["bytes"] / max(1, st["count"]) / 2**20, 1)
        for token in tokens:
            b.http.post(f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": 1})
        for run_id in ids:
            b.wait_done(run_id, timeout=600)
        return out
    finally:
        b.close()


def _status(b: bench.Bench) -> dict[str, Any]:
    return dict(b.http.get("/api/v1/local/status").json()["executor"]["checkpoints"])


def _daemon(tmp: Path, checkpoints: str, max_processes: int) -> bench.Bench:
    tmp.mkdir(parents=True)
    bench.TASKS = TASKS  # Bench writes the module's TASKS as the project
    os.environ.update({"TRIGGER_LOCAL_CHECKPOINTS": checkpoints, "TRIGGER_LOCAL_MAX_PROCESSES": str(max_processes),
                       "TRIGGER_LOCAL_WARM_IDLE_PER_VERSION": "1"})
    return bench.Bench(tmp, concurrency=25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
                                         f"kernel {platform.release()}",
                              "criu": subprocess.run(["criu", "--version"], capture_output=True, text=True)
                              .stdout.splitlines()[0], "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp:
        result["raw"] = raw_criu(Path(tmp), args.samples)
        result["executor"] = executor_criu(Path(tmp), args.samples)
        for mode in ("held", "checkpointed"):
            result[f"{args.runs}_waiting_{mode}"] = waiting_memory(Path(tmp), args.runs, mode)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
