#!/usr/bin/env python3
"""Docker executor benchmark (issue #4): container start latency, and trigger→start of a run on
a daemon with the docker executor (one container per attempt).

    python scripts/bench_docker.py --runs 20

Needs a Docker engine and the base image (scripts/setup-docker.sh). Deploys a one-task project
with `trigger-local deploy`, then triggers runs one after another on an idle daemon. Record the
results in docs/benchmarks.md (Docker executor section).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

TASK = '''
import time
from trigger_local import task

@task(id="stamp")
async def stamp(payload, ctx):
    return {"started": time.time()}
'''


def container_start_s(image: str, n: int) -> list[float]:
    """`containers.run` (create + start, detached) until the engine says it runs."""
    from trigger_local.executors.containers import connect

    client = connect()
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        c = client.containers.run(image, ["sleep", "5"], detach=True, network_mode="host")
        times.append(time.perf_counter() - t0)
        c.remove(force=True)
    client.close()
    return times


def trigger_to_start_s(n: int, work: Path) -> list[float]:
    from e2e.conftest import DaemonProcess  # the test suite's daemon driver

    project = work / "project"
    (project / "trigger").mkdir(parents=True)
    (project / "trigger.toml").write_text('project = "proj_bench_docker"\n')
    (project / "trigger" / "tasks.py").write_text(TASK)
    daemon = DaemonProcess(work / "home", env={"TRIGGER_LOCAL_EXECUTOR": "docker"}).start()
    try:
        env = {**os.environ, "TRIGGER_LOCAL_HOME": str(daemon.home)}
        subprocess.run([sys.executable, "-m", "trigger_local.cli.main", "deploy", "--tag", "trigger-local/bench:1"],
                       cwd=project, env=env, check=True, capture_output=True)
        out = []
        for _ in range(n):
            t0 = time.time()
            run_id = daemon.trigger("stamp", {})
            run = daemon.wait_status(run_id, timeout=60)
            out.append(run["output"]["started"] - t0)
        return out
    finally:
        daemon.close()
        subprocess.run(["docker", "rmi", "-f", "trigger-local/bench:1"], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--base-image", default="trigger-local-base:bookworm")
    args = parser.parse_args()
    starts = container_start_s(args.base_image, args.runs)
    with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
        t2s = trigger_to_start_s(args.runs, Path(tmp))
    result = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus", "date": time.strftime("%Y-%m-%d"),
        "container_start_p50_ms": round(statistics.median(starts) * 1000, 1),
        "container_start_max_ms": round(max(starts) * 1000, 1),
        "trigger_to_start_p50_ms": round(statistics.median(t2s) * 1000, 1),
        "trigger_to_start_max_ms": round(max(t2s) * 1000, 1), "runs": args.runs,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
