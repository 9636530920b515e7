"""The docker executor end to end: a real Docker engine, an image built by `trigger-local deploy`,
a real daemon running each attempt in its own container.

Skips (with the reason) where no engine or base image is available, except with CI=true, where
that is a failure: CI runs scripts/setup-docker.sh first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProcess, wait_for
from .docker_support import deploy, engine_or_skip, remove_image

DOCKER_TASKS = '''
import asyncio, os, socket, time, uuid
from trigger_local import task, logger, metadata, step, wait, Retry

@task(id="stamp")
async def stamp(payload, ctx):
    await asyncio.sleep((payload or {}).get("s", 0))
    return {"started": time.time(), "host": socket.gethostname()}

@task(id="inside", isolated=True)
async def inside(payload, ctx):
    logger.info("hello from a container", name=payload.get("name"))
    print("stdout line from the task", flush=True)
    v2, v1 = "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    memory = open(v2 if os.path.exists(v2) else v1).read().strip()
    return {"in_container": os.path.exists("/.dockerenv"), "cwd": os.getcwd(),
            "greeting": os.environ.get("GREETING"), "memory_max": memory, "machine": ctx.machine,
            "docker_socket": os.path.exists("/var/run/docker.sock")}

@task(id="hog", machine="micro",
      retry=Retry(max_attempts=2, min_timeout_s=0.1, factor=1, randomize=False))
def hog(payload, ctx):
    chunks = []
    for _ in range(100):  # 1 GB in 10 MB steps: far over micro's 0.25 GB
        chunks.append(bytearray(10 * 1024 * 1024))
    return len(chunks)

@task(id="grower", machine="micro",
      retry=Retry(max_attempts=2, min_timeout_s=0.1, factor=1, randomize=False,
                  out_of_memory={"machine": "small-2x"}))
def grower(payload, ctx):
    # 400 MB: over micro's 256, under 1 GB
    chunks = [bytearray(10 * 1024 * 1024) for _ in range(40)]
    v2, v1 = "/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    memory = open(v2 if os.path.exists(v2) else v1).read().strip()
    return {"mb": len(chunks) * 10, "machine": ctx.machine, "memory_max": memory}

@task(id="ev-token", retry=Retry(max_attempts=1))
async def ev_token(payload, ctx):
    value = await step.run("side-effect", lambda: uuid.uuid4().hex)
    metadata.set("value", value)
    metadata.set("host", socket.gethostname())
    token = await wait.create_token(timeout="1h")
    metadata.set("token", token.id)
    result = await wait.for_token(token)
    return {"value": value, "data": result.output, "attempt": ctx.attempt.number,
            "host": socket.gethostname()}

@task(id="napper")
async def napper(payload, ctx):
    logger.info("napping")
    await asyncio.sleep(payload.get("s", 2))
    return "rested"
'''


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A project deployed once with the real CLI (`trigger-local deploy`): (project, image)."""
    engine_or_skip()
    root = tmp_path_factory.mktemp("docker-project")
    image, stderr = deploy(root, tmp_path_factory.mktemp("deploy-home"), "e2e_docker", DOCKER_TASKS,
                           {".env": "GREETING=bonjour\n"})
    assert "Deployed" in stderr and "inside" in stderr
    yield root, image
    remove_image(image)


@pytest.fixture
def docker_daemon(tmp_path: Path, deployed: tuple[Path, str]) -> Iterator[DaemonProcess]:
    root, image = deployed
    daemon = DaemonProcess(tmp_path / "home", env={"TRIGGER_LOCAL_EXECUTOR": "docker"}).start()
    r = daemon.api("POST", "/api/v1/local/versions", json={"projectDir": str(root),
                                                           "dirs": ["trigger"],
                                                             "env": {"GREETING": "bonjour"},
                                                           "image": image})
    assert r.status_code == 200, r.text
    assert r.json()["image"] == image
    yield daemon
    daemon.close()


def test_dry_run_prints_the_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "trigger.toml").write_text('project = "p"\n[build]\nbase_image = "my/base:1"\n'
                                           'apt_packages = ["ffmpeg"]\nrequirements = ["six"]\n')
    done = subprocess.run([sys.executable, "-m", "trigger_local.cli.main", "deploy", "--dry-run"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("FROM my/base:1\n")
    assert "apt-get install -y --no-install-recommends ffmpeg" in done.stdout
    assert "pip install --no-cache-dir --no-index --find-links /tmp/wheels" in done.stdout


def test_a_deployed_task_runs_in_its_own_container(docker_daemon: DaemonProcess) -> None:
    run_id = docker_daemon.trigger("inside", {"name": "Ada"})
    run = docker_daemon.wait_status(run_id, timeout=60)
    assert run["status"] == "COMPLETED", run
    out = run["output"]
    assert out["in_container"] is True and out["cwd"] == "/app"
    assert out["greeting"] == "bonjour"  # the version's env vars are injected
    assert out["memory_max"] == str(512 * 1024 * 1024)  # small-1x: 0.5 GB
    assert out["docker_socket"] is False
    logs = docker_daemon.api("GET", f"/api/v1/runs/{run_id}/logs").json()
    assert "hello from a container" in str(logs)
    # the container's stdout is kept in the worker log once the container is gone
    workers = docker_daemon.home / "logs" / "workers"
    wait_for(lambda: any("stdout line from the task" in p.read_text()
                         for p in workers.glob("*.log")),
             what="the container's output in its worker log")


def test_exceeding_the_machine_memory_is_an_out_of_memory_error(
        docker_daemon: DaemonProcess) -> None:
    run_id = docker_daemon.trigger("hog")
    run = docker_daemon.wait_status(run_id, timeout=90)
    assert run["status"] in ("CRASHED", "FAILED"), run
    assert run["error"]["name"] == "OutOfMemoryError"
    assert "Out of memory" in run["error"]["message"] and "micro" in run["error"]["message"]
    assert run["attemptCount"] == 2  # retried per the task's policy


def test_an_out_of_memory_retry_runs_on_the_bigger_machine_of_the_policy(
        docker_daemon: DaemonProcess) -> None:
    run_id = docker_daemon.trigger("grower")
    run = docker_daemon.wait_status(run_id, timeout=90)
    assert run["status"] == "COMPLETED", run
    first, second = run["attempts"]
    assert first["error"]["name"] == "OutOfMemoryError" and "'micro'" in first["error"]["message"]
    assert second["status"] == "COMPLETED"
    # the retry's container had small-2x's 1 GB, and the run says so (API and `runs show`)
    assert run["output"] == {"mb": 400, "machine": "small-2x", "memory_max": str(1024**3)}
    assert run["machine"] == "small-2x"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    shown = subprocess.run([sys.executable, "-m", "trigger_local", "runs", "show", run_id],
                           capture_output=True,
                           text=True, timeout=60,
                           env={**env, "TRIGGER_LOCAL_HOME": str(docker_daemon.home)})
    assert shown.returncode == 0, shown.stderr
    assert ("Machine" in shown.stdout and "small-2x" in shown.stdout
            and "OutOfMemoryError" in shown.stdout)


def test_a_running_container_is_adopted_after_a_daemon_restart(
        docker_daemon: DaemonProcess) -> None:
    run_id = docker_daemon.trigger("napper", {"s": 3})
    # started = the task's first log line arrived (EXECUTING alone may precede the hand-over)
    wait_for(lambda: docker_daemon.api("GET", f"/api/v1/runs/{run_id}/logs").json()["data"], 60,
             what="the task to start in its container")
    docker_daemon.kill9()
    docker_daemon.start()
    run = docker_daemon.wait_status(run_id, timeout=60)
    assert run["status"] == "COMPLETED" and run["output"] == "rested"
    assert run["attemptCount"] == 1


def test_without_an_engine_runs_wait_and_doctor_says_why(tmp_path: Path, project: Path) -> None:
    nowhere = f"unix://{tmp_path}/no-docker.sock"
    env = {"TRIGGER_LOCAL_EXECUTOR": "docker", "DOCKER_HOST": nowhere}
    daemon = DaemonProcess(tmp_path / "home", env=env).start()
    try:
        daemon.register(project)
        run_id = daemon.trigger("hello", {"name": "x"})
        def reported() -> Any:
            status = daemon.api("GET", "/api/v1/local/status").json()
            return status["executor"]["problem"] and status

        status = wait_for(reported, what="the executor to report the engine")
        assert "not running" in status["executor"]["problem"]
        assert daemon.run(run_id)["status"] == "QUEUED"
        doctor = subprocess.run([sys.executable, "-m", "trigger_local.cli.main", "doctor"],
                                capture_output=True,
                                text=True, timeout=60, env={**os.environ, **env,
                                                            "TRIGGER_LOCAL_HOME": str(daemon.home)})
        assert doctor.returncode == 1
        assert "Executor" in doctor.stdout and "setup-docker.sh" in doctor.stdout
        assert daemon.run(run_id)["status"] == "QUEUED"
    finally:
        daemon.close()


def test_a_warm_container_hosts_many_runs(docker_daemon: DaemonProcess) -> None:
    """Runs of an async task share a warm container per version (docs/docker.md): started in
    milliseconds once it is up, several at once in it."""
    warm = docker_daemon.wait_status(docker_daemon.trigger("stamp"), timeout=90)
    assert warm["status"] == "COMPLETED", warm
    host = warm["output"]["host"]
    latencies = []
    for _ in range(15):
        sent = time.time()
        run = docker_daemon.wait_status(docker_daemon.trigger("stamp"), timeout=30)
        assert run["output"]["host"] == host
        latencies.append((run["output"]["started"] - sent) * 1000)
    p50 = sorted(latencies)[len(latencies) // 2]
    print(f"docker trigger→start once warm: p50 {p50:.1f} ms, max {max(latencies):.1f} ms")
    assert p50 < 100  # the goal is < 20 ms on a quiet machine; this one is shared
    together = [docker_daemon.trigger("stamp", {"s": 1}) for _ in range(5)]
    runs = [docker_daemon.wait_status(r, timeout=30) for r in together]
    assert {r["output"]["host"] for r in runs} == {host}
    starts = [r["output"]["started"] for r in runs]
    assert max(starts) - min(starts) < 1  # they ran at once, not one after the other


def _trace_events(daemon: DaemonProcess, run_id: str, type_: str) -> list[dict[str, Any]]:
    r = daemon.api("GET", f"/api/v1/runs/{run_id}/trace")
    assert r.status_code == 200, r.text
    return [e for e in r.json()["events"] if e["type"] == type_]


def test_a_run_in_a_shared_container_is_evicted_and_resumes_by_replay(
        tmp_path: Path, deployed: tuple[Path, str]) -> None:
    """evict_after_s = 1 (docs/durability.md, "Eviction"): a token wait in a shared container is
    evicted — its coroutine dropped while the container goes on serving a neighbour and new
    runs — and the original token completes it by replay: its step is not run again, its
    attempt number does not change, no retry is counted."""
    root, image = deployed
    home = tmp_path / "home"
    daemon = DaemonProcess(home, env={"TRIGGER_LOCAL_EXECUTOR": "docker",
                                      "TRIGGER_LOCAL_HOME": str(home),
                                      "TRIGGER_LOCAL_CHECKPOINTS": "off",
                                      "TRIGGER_LOCAL_EVICT_AFTER_S": "1"}).start()
    try:
        r = daemon.api("POST", "/api/v1/local/versions", json={
            "projectDir": str(root), "dirs": ["trigger"], "image": image})
        assert r.status_code == 200, r.text
        # a neighbour that executes all along keeps the shared container up
        neighbour = daemon.trigger("napper", {"s": 600})
        daemon.wait_status(neighbour, "EXECUTING", timeout=120)
        run_id = daemon.trigger("ev-token", {})
        meta = wait_for(lambda: (m := daemon.run(run_id)["metadata"] or {}).get("token") and m,
                        90, interval=0.1, what="the run to create its token")
        evicted = wait_for(lambda: _trace_events(daemon, run_id, "run.evicted"), 60,
                           interval=0.1, what="the run to be evicted")
        assert "evict_after_s" in evicted[0]["data"]["reason"], evicted
        assert daemon.run(run_id)["status"] == "WAITING"
        assert daemon.run(neighbour)["status"] == "EXECUTING"  # its container went on
        other = daemon.wait_status(daemon.trigger("stamp"), timeout=90)
        assert other["status"] == "COMPLETED" and other["output"]["host"] == meta["host"], other
        r = daemon.api("POST", f"/api/v1/waitpoints/tokens/{meta['token']}/complete",
                       json={"data": {"ok": 7}})
        assert r.status_code == 200, r.text
        done = daemon.wait_status(run_id, timeout=120)
        assert done["status"] == "COMPLETED", done
        # the step's value is the first execution's: the replay did not run it again
        assert done["output"]["value"] == meta["value"], done
        assert done["output"]["data"] == {"ok": 7} and done["output"]["attempt"] == 1, done
        assert done["attemptCount"] == 1, done  # the eviction counted no retry
        assert _trace_events(daemon, run_id, "run.replayed"), "the run resumed by replay"
        daemon.api("POST", f"/api/v2/runs/{neighbour}/cancel")
    finally:
        daemon.close()
        found = subprocess.run(["docker", "ps", "-aq", "--filter",
                                f"label=dev.trigger-local.home={home}"],
                               capture_output=True, text=True).stdout.split()
        if found:
            subprocess.run(["docker", "rm", "-f", *found], capture_output=True)
