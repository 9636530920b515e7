#!/usr/bin/env python3
"""CRIU checkpoint benchmark (issue #4), process executor. Needs root and a working CRIU >= 4.

    python scripts/bench_criu.py                # everything
    python scripts/bench_criu.py --runs 50      # fewer waiting runs for the memory figure
    python scripts/bench_criu.py --only timings --samples 30

1. by hand: `criu dump` / `criu restore` of the same kind of process a waiting task is — a
   Python process that imported the runtime, the SDK, httpx and the project's task module,
   in its own session with stdio to a file, asleep in the freeze handshake's 50 ms steps —
   with the same CRIU options the daemon uses (trigger_local/executors/criu.py);
2. the same through the daemon: a task waiting on a token is checkpointed, then restored (the
   dump_ms / restore_ms the executor records: the CRIU commands as the daemon runs them), and
   the whole way round: `run.waiting` → `run.checkpointed` (handshake + dump), and token
   completed → the task's next line (restore + the run continuing). Also a copy of the
   daemon's own images restored by hand just before the daemon restores them. 1 and 2 take
   turns, one sample each, so that both see the same load;
3. N runs each waiting on a token: summed RSS of the task processes when held, against when
   checkpointed (0 processes), and the disk per checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import bench_daemon  # noqa: E402 - the daemon harness (scripts/bench_daemon.py)

from trigger_local.executors import criu  # noqa: E402

TASKS = '''
import time
from trigger_local import task, wait

@task(id="tokenwait")
async def tokenwait(payload, ctx):
    ballast = "x" * (payload.get("mb", 0) * 1024 * 1024)
    result = await wait.for_token(payload["token"])
    return {"n": result.output, "kept": len(ballast), "resumed": time.time()}
'''

# The by-hand process: what a task process holds while it waits for its dump (runtime, SDK,
# httpx, the project's module, stdout captured), blocked the way the freeze handshake blocks.
RAW = """
import asyncio, sys
from pathlib import Path
import httpx  # noqa: F401 - the worker client's HTTP stack
from trigger_local.runtime import __main__ as runtime, stdio
from trigger_local.runtime.indexer import load_project
from trigger_local.sdk import waits

runtime.load_project(Path(sys.argv[1]), ["trigger"])
stdio.install()
print("ready", flush=True)

async def frozen_wait():
    while True:
        await asyncio.sleep(waits.FREEZE_STEP_S)

asyncio.run(frozen_wait())
"""


def _ms(started: float) -> float:
    return (time.monotonic() - started) * 1000


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def raw_sample(tmp: Path, i: int) -> tuple[float, float, int]:
    """One `criu dump` / `criu restore` by hand, with the daemon's own argument lists:
    (dump ms, restore ms, image bytes)."""
    project = tmp / "raw-project"
    if not project.exists():
        (project / "trigger").mkdir(parents=True)
        (project / "trigger" / "bench.py").write_text(TASKS)
    images = tmp / f"raw{i}"
    images.mkdir()
    log = tmp / f"raw{i}.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-c", RAW, str(project)], cwd=project,
                                stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    _until("the by-hand process to be ready", lambda: "ready" in log.read_text(), 60)
    time.sleep(0.3)  # its start-up (imports) is over
    started = time.monotonic()
    subprocess.run(criu.dump_argv("criu", proc.pid, images), check=True, stdout=subprocess.DEVNULL)
    dump_ms = _ms(started)
    proc.wait()
    size = criu.images_size(images)
    started = time.monotonic()
    subprocess.run(criu.restore_argv("criu", images), check=True, stdout=subprocess.DEVNULL)
    restore_ms = _ms(started)
    os.kill(proc.pid, 9)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(proc.pid, 0)  # restored as our child (--restore-sibling): reap it
    shutil.rmtree(images)
    return dump_ms, restore_ms, size


def _token(b: bench_daemon.Bench) -> str:
    r = b.http.post("/api/v1/waitpoints/tokens", json={"timeout": "1h"})
    r.raise_for_status()
    return str(r.json()["id"])


def _checkpoints(b: bench_daemon.Bench, run_id: str) -> list[dict[str, Any]]:
    return list(b.http.get(f"/api/v1/runs/{run_id}/trace").json()["checkpoints"])


def _until(what: str, predicate: Any, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _event_time(trace: dict[str, Any], type_: str) -> float:
    stamp = next(e["at"] for e in trace["events"] if e["type"] == type_)
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def daemon_sample(b: bench_daemon.Bench) -> dict[str, float]:
    """A task waiting on a token is checkpointed, then the token is completed: the dump_ms /
    restore_ms the executor records (its CRIU commands), and the whole way round."""
    token = _token(b)
    run_id = b.trigger("tokenwait", {"token": token, "mb": 0})
    _until("a checkpoint", lambda: _checkpoints(b, run_id))
    ck = _checkpoints(b, run_id)[0]
    # The fairest by-hand restore: a copy of these very images, restored and killed again
    copy = Path(ck["path"] + ".copy")
    shutil.copytree(ck["path"], copy)
    time.sleep(0.3)
    started = time.monotonic()
    subprocess.run(criu.restore_argv("criu", copy), check=True, stdout=subprocess.DEVNULL)
    same_images_ms = _ms(started)
    os.kill(ck["pid"], 9)
    os.waitpid(ck["pid"], 0)
    shutil.rmtree(copy)
    # the copy may have seen (and deleted) the freeze handshake's done file: put it back
    (b.home / "freeze" / f"{run_id}.1").write_text("frozen")
    time.sleep(0.3)  # the run is suspended: its process is gone
    sent = time.time()
    b.http.post(f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": 1}).raise_for_status()
    # poll gently: a 2 ms poll loop (Bench.wait_done) would compete with the restore for the
    # 2 CPUs; the task stamps its own time, so this does not change the figure
    _until("the run to finish", lambda: b.run(run_id)["isCompleted"], 60)
    run = b.run(run_id)
    trace = b.http.get(f"/api/v1/runs/{run_id}/trace").json()
    ck = trace["checkpoints"][0]
    frozen_s = _event_time(trace, "run.checkpointed") - _event_time(trace, "run.waiting")
    return {"dump_ms": ck["dump_ms"], "restore_ms": ck["restore_ms"], "size": ck["size_bytes"],
            "same_images_by_hand_restore_ms": same_images_ms,
            "waiting_to_checkpointed_ms": frozen_s * 1000,
            "token_to_next_line_ms": (run["output"]["resumed"] - sent) * 1000}


def timings(tmp: Path, samples: int) -> dict[str, Any]:
    """By hand and through the daemon, one sample of each in turn (the order alternating), so
    that both see the same load on the shared CPUs."""
    b = _daemon(tmp / "exec", checkpoints="auto", max_processes=10)
    raw: list[tuple[float, float, int]] = []
    daemon: list[dict[str, float]] = []
    try:
        daemon_sample(b)  # warm-up: the first run starts the task process
        for i in range(samples):
            if i % 2:
                daemon.append(daemon_sample(b))
                raw.append(raw_sample(tmp, i))
            else:
                raw.append(raw_sample(tmp, i))
                daemon.append(daemon_sample(b))
    finally:
        b.close()
    out: dict[str, Any] = {
        "samples": samples,
        "raw": {"dump_ms": _median([r[0] for r in raw]), "restore_ms": _median([r[1] for r in raw]),
                "size_mib": round(statistics.median(r[2] for r in raw) / 2**20, 1),
                "argv": " ".join(criu.dump_argv("criu", 0, Path("D"))) + " | "
                        + " ".join(criu.restore_argv("criu", Path("D")))},
        "executor": {k: _median([d[k] for d in daemon]) for k in daemon[0] if k != "size"},
    }
    out["executor"]["size_mib"] = round(statistics.median(d["size"] for d in daemon) / 2**20, 1)
    out["ratio_of_medians"] = {k: round(out["executor"][k] / out["raw"][k], 2)
                               for k in ("dump_ms", "restore_ms")}
    out["restore_vs_same_images_by_hand"] = round(statistics.median(
        d["restore_ms"] / d["same_images_by_hand_restore_ms"] for d in daemon), 2)
    # each daemon sample against the by-hand sample taken next to it
    pairs = list(zip(daemon, raw, strict=True))
    out["median_pair_ratio"] = {k: round(statistics.median(d[k] / r[j] for d, r in pairs), 2)
                                for j, k in enumerate(("dump_ms", "restore_ms"))}
    return out


def _worker_rss_mib(home: Path) -> tuple[int, float]:
    marker, total, count = f"TRIGGER_LOCAL_HOME={home}".encode(), 0, 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if marker in env and any(e.startswith(b"TRIGGER_LOCAL_WORKER_ID=") for e in env):
                status = Path(f"/proc/{pid}/status").read_text()
                total += int(next(ln for ln in status.splitlines()
                                  if ln.startswith("VmRSS:")).split()[1])
                count += 1
        except (OSError, StopIteration):
            continue
    return count, total / 1024


def waiting_memory(tmp: Path, runs: int, mode: str) -> dict[str, Any]:
    b = _daemon(tmp / mode, checkpoints="auto" if mode == "checkpointed" else "off",
                max_processes=runs + 10)
    try:
        tokens = [_token(b) for _ in range(runs)]
        ids = [b.trigger("tokenwait", {"token": t}) for t in tokens]
        started = time.monotonic()
        if mode == "checkpointed":
            _until("every checkpoint", lambda: _status(b)["count"] >= runs)
        else:
            _until("every run waiting",
                   lambda: b.http.get("/api/v1/local/status").json()["runs"].get("WAITING", 0)
                   >= runs)
        _until("the checkpointed processes to exit", lambda: mode != "checkpointed"
               or _worker_rss_mib(b.home)[0] <= 4)
        count, rss = _worker_rss_mib(b.home)
        out = {"processes": count, "task_rss_mib": round(rss, 1),
               "daemon_rss_mib": round(b.rss_mib(), 1),
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


def _status(b: bench_daemon.Bench) -> dict[str, Any]:
    return dict(b.http.get("/api/v1/local/status").json()["executor"]["checkpoints"])


def _daemon(tmp: Path, checkpoints: str, max_processes: int) -> bench_daemon.Bench:
    tmp.mkdir(parents=True)
    bench_daemon.TASKS = TASKS  # Bench writes the module's TASKS as the project
    os.environ.update({"TRIGGER_LOCAL_CHECKPOINTS": checkpoints,
                       "TRIGGER_LOCAL_MAX_PROCESSES": str(max_processes),
                       "TRIGGER_LOCAL_WARM_IDLE_PER_VERSION": "1"})
    return bench_daemon.Bench(tmp, concurrency=25)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--only", choices=["timings", "memory"], help="one half of the benchmark")
    args = parser.parse_args()
    result: dict[str, Any] = {"machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} "
                                         f"cpus, kernel {platform.release()}",
                              "criu": subprocess.run(["criu", "--version"], capture_output=True,
                                                     text=True)
                              .stdout.splitlines()[0], "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp:
        if args.only != "memory":
            result["load_average"] = os.getloadavg()
            result.update(timings(Path(tmp), args.samples))
            result["load_average_after_timings"] = os.getloadavg()
        if args.only != "timings":
            for mode in ("held", "checkpointed"):
                result[f"{args.runs}_waiting_{mode}"] = waiting_memory(Path(tmp), args.runs, mode)
        result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
