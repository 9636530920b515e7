#!/usr/bin/env python3
"""Docker executor benchmark (issues #4, #13): container start latency, trigger→start of a run
on a daemon with the docker executor — cold (the first run starts its version's container) and
warm (runs one after another on the container that hosts many runs: p50/p99) — and
checkpoint/restore of a
waiting run's container through the daemon side by side with the raw `docker checkpoint create`
/ `docker start --checkpoint` of the same kind of container done by hand.

    python scripts/bench_docker.py --runs 20
    python scripts/bench_docker.py --runs 5 --checkpoint-runs 5

Needs a Docker engine and the base image (scripts/setup-docker.sh); the checkpoint part needs
`dockerd --experimental` and CRIU (scripts/setup-criu.sh; `--checkpoint-runs 0` skips it).
Deploys a two-task project with `trigger-local deploy`, then triggers runs one after another on
an idle daemon. Record the results in docs/benchmarks.md (Docker executor section).
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
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

TASK = '''
import time
from trigger_local import task, wait

@task(id="stamp")
async def stamp(payload, ctx):
    return {"started": time.time()}

@task(id="waiter")
async def waiter(payload, ctx):
    blob = "x" * 200_000  # a local that must survive the checkpoint
    result = await wait.for_token(payload["token"])
    return {"resumed_at": time.time(), "ok": result.ok and blob == "x" * 200_000}
'''
IMAGE = "trigger-local/bench:1"
# the same kind of process as a task container's runtime: the image's Python with trigger_local
# loaded
RAW_COMMAND = ["/opt/venv/bin/python", "-c",
               "import time, trigger_local.runtime, trigger_local.sdk; blob = 'x' * 200_000; "
               "time.sleep(3600)"]


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


def one_trigger_to_start_s(daemon: Any, split: list[float] | None = None) -> float:
    """Trigger → the task's first line running (the task stamps the host's clock: a container
    shares the kernel's). `split` gets the part after the daemon started the attempt (the run's
    `startedAt`): the delivery to the container and the runtime starting the coroutine."""
    t0 = time.time()
    run_id = daemon.trigger("stamp", {})
    run = daemon.wait_status(run_id, timeout=120)
    assert run["status"] == "COMPLETED", run
    if split is not None and run.get("startedAt"):
        split.append(float(run["output"]["started"]) - _at(run["startedAt"]))
    return float(run["output"]["started"]) - t0


def trigger_to_start(daemon: Any, n: int, warmup: int) -> dict[str, Any]:
    """A cold start (no container yet: the first run starts its version's container), then,
    after `warmup` runs, `n` runs one after another on the warm container (a shared one hosts
    many runs, executors/pool.py)."""
    cold = one_trigger_to_start_s(daemon)
    for _ in range(warmup):
        one_trigger_to_start_s(daemon)
    delivery: list[float] = []
    warm = sorted(one_trigger_to_start_s(daemon, delivery) for _ in range(n))
    p99 = warm[min(len(warm) - 1, round(0.99 * (len(warm) - 1)))]
    containers = daemon.api("GET", "/api/v1/local/status").json()["executor"].get("processes")
    return {"cold_trigger_to_start_ms": round(cold * 1000, 1),
            "warm_trigger_to_start_p50_ms": round(statistics.median(warm) * 1000, 1),
            "warm_trigger_to_start_p99_ms": round(p99 * 1000, 1),
            "warm_trigger_to_start_max_ms": round(warm[-1] * 1000, 1),
            # of which: the attempt started (the daemon's part ends) → the task's code runs
            "warm_started_to_task_p50_ms": round(statistics.median(delivery) * 1000, 1)
            if delivery else None,
            "warm_runs": n, "containers_after": containers}


def _at(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _checkpointed(daemon: Any, run_id: str) -> dict[str, Any] | None:
    trace = daemon.api("GET", f"/api/v1/runs/{run_id}/trace").json()
    return trace if trace["checkpoints"] else None


POLL_S = 0.25  # the driver's polls: slow enough not to take CPU from the engine it measures


def checkpoint_through_daemon(daemon: Any, got: dict[str, list[float]]) -> None:
    """One token wait on the daemon: the engine call times it records (dump_ms, restore_ms), the
    whole freeze (wait answered → checkpoint recorded: handshake, dump, bookkeeping) and the
    whole resume (token completed → task code running again)."""
    from e2e.conftest import TERMINAL, wait_for

    token = daemon.api("POST", "/api/v1/waitpoints/tokens", json={"timeout": "1h"}).json()["id"]
    run_id = daemon.trigger("waiter", {"token": token})
    trace = wait_for(lambda: _checkpointed(daemon, run_id), 60, POLL_S, what="the checkpoint")
    events = {e["type"]: e for e in trace["events"]}
    ck = trace["checkpoints"][0]
    got["dump_ms"].append(ck["dump_ms"])
    got["bytes"].append(ck["size_bytes"])
    frozen_s = _at(events["run.checkpointed"]["at"]) - _at(events["run.waiting"]["at"])
    got["freeze_ms"].append(frozen_s * 1000)
    t0 = time.time()
    daemon.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": {}})
    run = wait_for(lambda: (r := daemon.run(run_id))["status"] in TERMINAL and r, 60, POLL_S,
                   what="the run")
    assert run["status"] == "COMPLETED" and run["output"]["ok"], run
    got["resume_ms"].append((run["output"]["resumed_at"] - t0) * 1000)
    restored = daemon.api("GET", f"/api/v1/runs/{run_id}/trace").json()["checkpoints"][0]
    got["restore_ms"].append(restored["restore_ms"])


def raw_flags() -> list[str]:
    """`docker run` flags of a task container (executors/containers.py), for the by-hand side."""
    from trigger_local.executors.containers import container_options, machine_for

    options = container_options(machine_for(None), {}, {})
    return ["--network", "host", "--cpus", str(options["nano_cpus"] / 1e9), "--memory",
            str(options["mem_limit"]),
            "--memory-swap", str(options["memswap_limit"]), "--cap-drop", "ALL", "--security-opt",
            "no-new-privileges", "--pids-limit", str(options["pids_limit"]), "-w", "/app"]


def checkpoint_by_hand(image: str, name: str, freeze: Path, root: str,
                       got: dict[str, list[float]]) -> None:
    """The raw tool on the same kind of container (the image's Python, a task container's
    options and freeze mount): `docker checkpoint create` and `docker start --checkpoint`,
    timed around the CLI."""
    freeze.mkdir(parents=True)
    cid = subprocess.run(["docker", "run", "-d", "--name", name, *raw_flags(), "-v",
                          f"{freeze}:/run/trigger-local/freeze", image, *RAW_COMMAND],
                         capture_output=True, text=True, check=True).stdout.strip()
    try:
        time.sleep(2)  # imports done, the process sleeps: as a waiting runtime does
        t0 = time.perf_counter()
        subprocess.run(["docker", "checkpoint", "create", name, "ck"], capture_output=True,
                       check=True)
        got["create_ms"].append((time.perf_counter() - t0) * 1000)
        got["bytes"].append(_du(Path(root) / "containers" / cid / "checkpoints" / "ck"))
        t0 = time.perf_counter()
        subprocess.run(["docker", "start", "--checkpoint", "ck", name], capture_output=True,
                       check=True)
        got["start_ms"].append((time.perf_counter() - t0) * 1000)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)


def checkpoints_side_by_side(daemon: Any, n: int, work: Path) -> dict[str, Any]:
    """Alternate one run through the daemon and one container by hand, so both see the same load."""
    ours: dict[str, list[float]] = {"dump_ms": [], "restore_ms": [], "freeze_ms": [],
                                    "resume_ms": [], "bytes": []}
    raw: dict[str, list[float]] = {"create_ms": [], "start_ms": [], "bytes": []}
    root = subprocess.run(["docker", "info", "--format", "{{.DockerRootDir}}"], capture_output=True,
                          text=True, check=True).stdout.strip()
    for i in range(n):
        checkpoint_through_daemon(daemon, ours)
        name = f"bench-raw-ck-{os.getpid()}-{i}"
        checkpoint_by_hand(IMAGE, name, work / "raw-freeze" / name, root, raw)
    return {
        "runs": n,
        "daemon_checkpoint_call_p50_ms": _p50(ours["dump_ms"]),
        "daemon_restore_call_p50_ms": _p50(ours["restore_ms"]),
        "daemon_freeze_total_p50_ms": _p50(ours["freeze_ms"]),
        "daemon_resume_total_p50_ms": _p50(ours["resume_ms"]),
        "daemon_checkpoint_bytes_p50": int(statistics.median(ours["bytes"])),
        "raw_checkpoint_create_p50_ms": _p50(raw["create_ms"]),
        "raw_start_checkpoint_p50_ms": _p50(raw["start_ms"]),
        "raw_checkpoint_bytes_p50": int(statistics.median(raw["bytes"])),
        "checkpoint_vs_raw": _ratio(ours["dump_ms"], raw["create_ms"]),
        "freeze_total_vs_raw": _ratio(ours["freeze_ms"], raw["create_ms"]),
        "restore_vs_raw": _ratio(ours["restore_ms"], raw["start_ms"]),
        "resume_total_vs_raw": _ratio(ours["resume_ms"], raw["start_ms"]),
        "all": {"daemon": {k: [round(x, 1) for x in v] for k, v in ours.items()},
                "raw": {k: [round(x, 1) for x in v] for k, v in raw.items()}},
    }


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()
               and not p.name.endswith(".log"))


def _p50(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def _ratio(ours: list[float], raw: list[float]) -> float:
    return round(statistics.median(ours) / statistics.median(raw), 2)


def with_deployed_daemon(work: Path, runs: int, ck_runs: int, warmup: int) -> dict[str, Any]:
    from e2e.conftest import DaemonProcess  # the test suite's daemon driver

    project = work / "project"
    (project / "trigger").mkdir(parents=True)
    (project / "trigger.toml").write_text('project = "proj_bench_docker"\n')
    (project / "trigger" / "tasks.py").write_text(TASK)
    daemon = DaemonProcess(work / "home", env={"TRIGGER_LOCAL_EXECUTOR": "docker"}).start()
    try:
        env = {**os.environ, "TRIGGER_LOCAL_HOME": str(daemon.home)}
        subprocess.run([sys.executable, "-m", "trigger_local.cli.main", "deploy", "--tag", IMAGE],
                       cwd=project, env=env, check=True, capture_output=True)
        result: dict[str, Any] = trigger_to_start(daemon, runs, warmup)
        if ck_runs:
            result["checkpoint"] = checkpoints_side_by_side(daemon, ck_runs, work)
        return result
    finally:
        daemon.close()
        found = subprocess.run(["docker", "ps", "-aq", "--filter",
                                f"label=dev.trigger-local.home={daemon.home}"],
                               capture_output=True, text=True).stdout.split()
        if found:
            subprocess.run(["docker", "rm", "-f", *found], capture_output=True)
        subprocess.run(["docker", "rmi", "-f", IMAGE], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--checkpoint-runs", type=int, default=5,
                        help="waiting runs checkpointed through the daemon, and containers by hand "
                             "(0: skip)")
    parser.add_argument("--warmup", type=int, default=5,
                        help="runs on the warm container before the measured ones")
    parser.add_argument("--base-image", default="trigger-local-base:bookworm")
    args = parser.parse_args()
    load_before = os.getloadavg()
    starts = container_start_s(args.base_image, args.runs)
    with tempfile.TemporaryDirectory(prefix="bench-docker-") as tmp:
        deployed = with_deployed_daemon(Path(tmp), args.runs, args.checkpoint_runs, args.warmup)
    result = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        "date": time.strftime("%Y-%m-%d"),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "container_start_p50_ms": round(statistics.median(starts) * 1000, 1),
        "container_start_max_ms": round(max(starts) * 1000, 1), "runs": args.runs, **deployed,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
