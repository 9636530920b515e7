"""Checkpoint and restore of waiting runs with the docker executor: a real Docker engine
(`dockerd --experimental`), real CRIU, an image built by `trigger-local deploy`.

Skips (with the reason) where the engine, its base image or CRIU is missing, except with
CI=true, where that is a failure.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProcess, wait_for
from .criu_support import (
    checkpoints,
    complete_token,
    create_token,
    events,
    require_criu,
    wait_checkpointed,
)
from .docker_support import deploy, engine_or_skip, remove_image

pytestmark = pytest.mark.slow

CK_DOCKER_TASKS = '''
import os, subprocess, sys, time
from trigger_local import Retry, task, wait

@task(isolated=True, id="dk-duration")
async def dk_duration(payload, ctx):
    state = {"counter": 41, "blob": "x" * 200_000, "pid": os.getpid()}
    await wait.for_(seconds=payload["seconds"])
    state["counter"] += 1
    return {"counter": state["counter"], "blob_ok": state["blob"] == "x" * 200_000,
            "same_process": state["pid"] == os.getpid(), "resumed_at": time.time()}

@task(isolated=True, id="dk-token",
      retry=Retry(max_attempts=2, min_timeout_s=0.1, max_timeout_s=0.2, factor=1))
async def dk_token(payload, ctx):
    local = [1, 2, 3]
    result = await wait.for_token(payload["token"])
    local.append(result.output["n"])
    return {"local": local, "attempt": ctx.attempt.number, "resumed_at": time.time()}

@task(isolated=True, id="dk-child")
async def dk_child(payload, ctx):
    await wait.for_(seconds=2)  # long enough for the parent's container to be checkpointed
    return {"doubled": payload["n"] * 2}

@task(isolated=True, id="dk-parent")
async def dk_parent(payload, ctx):
    mine = {"n": payload["n"], "pid": os.getpid()}
    result = await dk_child.trigger_and_wait({"n": mine["n"]})
    return {"child": result.unwrap(), "n": mine["n"], "same_process": mine["pid"] == os.getpid()}

@task(isolated=True, id="dk-child-socket")
async def dk_child_socket(payload, ctx):
    # a child process holding a TCP connection: CRIU cannot dump the container
    code = ("import socket, sys, time; "
            "s = socket.create_connection(('127.0.0.1', int(sys.argv[1]))); "
            "print('connected', flush=True); time.sleep(600)")
    child = subprocess.Popen([sys.executable, "-c", code, str(payload["port"])],
                             stdout=subprocess.PIPE)
    assert child.stdout.readline().strip() == b"connected"  # the connection exists before the wait
    result = await wait.for_token(payload["token"])
    child.kill()
    return {"n": result.output["n"]}
'''


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)


def _container_state(name: str) -> dict[str, Any] | None:
    """The container's State from `docker inspect`, None when it does not exist."""
    done = _docker("inspect", "--format", "{{json .State}}", name)
    return json.loads(done.stdout) if done.returncode == 0 else None


def _remove_containers(home: Path) -> None:
    found = _docker("ps", "-aq", "--filter", f"label=dev.trigger-local.home={home}").stdout.split()
    if found:
        _docker("rm", "-f", *found)


PROJECT = "proj_e2e_docker_ck"  # the deployed project: its runs wait on its own tokens

@pytest.fixture(scope="module")
def ck_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A project with waiting tasks, deployed once with the real CLI: (project, image)."""
    engine_or_skip()
    require_criu()
    root = tmp_path_factory.mktemp("docker-ck-project")
    image, _ = deploy(root, tmp_path_factory.mktemp("deploy-ck-home"), PROJECT[len("proj_"):],
                      CK_DOCKER_TASKS)
    yield root, image
    remove_image(image)


def _docker_daemon(home: Path, ck_image: tuple[Path, str], **env: str) -> DaemonProcess:
    root, image = ck_image
    base = {"TRIGGER_LOCAL_EXECUTOR": "docker", "TRIGGER_LOCAL_HOME": str(home),
            "TRIGGER_LOCAL_HOLD_THRESHOLD_S": "1"}
    daemon = DaemonProcess(home, env={**base, **env}).start()
    r = daemon.api("POST", "/api/v1/local/versions", json={"projectDir": str(root),
                                                           "dirs": ["trigger"],
                                                             "image": image})
    assert r.status_code == 200, r.text
    return daemon


@pytest.fixture
def dkd(tmp_path: Path, ck_image: tuple[Path, str]) -> Iterator[DaemonProcess]:
    daemon = _docker_daemon(tmp_path / "home", ck_image)
    yield daemon
    daemon.close()
    _remove_containers(daemon.home)


def _executor(d: DaemonProcess) -> dict[str, Any]:
    return dict(d.api("GET", "/api/v1/local/status").json()["executor"])


def test_a_waiting_container_is_checkpointed_stopped_and_restored_with_its_locals(
        dkd: DaemonProcess) -> None:
    executor = _executor(dkd)
    assert executor["checkpoints"]["available"] is True, executor
    run_id = dkd.trigger("dk-duration", {"seconds": 6})
    ck = wait_checkpointed(dkd, run_id)[0]
    assert ck["executor"] == "docker" and ck["status"] == "active"
    assert ck["size_bytes"] > 200_000 and ck["dump_ms"] > 0
    assert f"/checkpoints/{ck['id']}" in ck["path"]
    # while it waits the container is stopped (not removed) and its slot is free
    state = _container_state(ck["worker_id"])
    assert state is not None and state["Running"] is False, state
    assert dkd.run(run_id)["status"] == "WAITING"
    executor = _executor(dkd)
    assert executor["containers"] == 0 and executor["checkpoints"]["count"] == 1
    run = dkd.wait_status(run_id, timeout=60)
    assert run["status"] == "COMPLETED", run
    assert (run["output"]["counter"] == 42 and run["output"]["blob_ok"]
            and run["output"]["same_process"])
    assert run["attemptCount"] == 1
    done = checkpoints(dkd, run_id)[0]
    assert done["status"] == "restored" and done["restore_ms"] > 0
    # the finished run's container (with any checkpoint in it) is gone
    wait_for(lambda: _container_state(ck["worker_id"]) is None, 30,
             what="the container to be removed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    shown = subprocess.run([sys.executable, "-m", "trigger_local", "runs", "show", run_id],
                           capture_output=True,
                           text=True, env={**env, "TRIGGER_LOCAL_HOME": str(dkd.home)}, timeout=60)
    assert "Checkpoints" in shown.stdout and "restored" in shown.stdout, shown.stdout + shown.stderr


def test_kill_9_daemon_with_a_checkpointed_container_the_run_still_resumes(
        dkd: DaemonProcess) -> None:
    token = create_token(dkd, PROJECT)
    run_id = dkd.trigger("dk-token", {"token": token})
    ck = wait_checkpointed(dkd, run_id)[0]
    dkd.kill9()
    state = _container_state(ck["worker_id"])
    assert state is not None and state["Running"] is False
    dkd.start()
    assert dkd.run(run_id)["status"] == "WAITING"  # not taken for a lost container
    assert _executor(dkd)["checkpoints"]["count"] == 1
    complete_token(dkd, token, {"n": 4})
    run = dkd.wait_status(run_id, timeout=60)
    assert run["status"] == "COMPLETED", run
    assert run["output"]["local"] == [1, 2, 3, 4] and run["attemptCount"] == 1
    assert checkpoints(dkd, run_id)[0]["status"] == "restored"


def test_a_failed_checkpoint_holds_the_run_in_its_running_container(dkd: DaemonProcess) -> None:
    peer = socket.create_server(("127.0.0.1", 0))
    try:
        token = create_token(dkd, PROJECT)
        run_id = dkd.trigger("dk-child-socket", {"token": token, "port": peer.getsockname()[1]})
        failed = wait_for(lambda: events(dkd, run_id, "run.checkpoint_failed"), 60,
                          what="the checkpoint to fail")
        assert "checkpoint failed" in failed[0]["data"]["reason"], failed
        assert checkpoints(dkd, run_id) == []
        worker = dkd.run(run_id)
        assert worker["status"] == "WAITING"
        assert _executor(dkd)["containers"] == 1  # held: still running, still in its slot
        complete_token(dkd, token, {"n": 7})
        run = dkd.wait_status(run_id, timeout=60)
        assert (run["status"] == "COMPLETED" and run["output"] == {"n": 7}
                and run["attemptCount"] == 1), run
    finally:
        peer.close()


def test_a_failed_restore_resumes_the_run_by_replay(dkd: DaemonProcess) -> None:
    token = create_token(dkd, PROJECT)
    run_id = dkd.trigger("dk-token", {"token": token})
    ck = wait_checkpointed(dkd, run_id)[0]
    assert _docker("checkpoint", "rm", ck["worker_id"], ck["id"]).returncode == 0
    complete_token(dkd, token, {"n": 1})
    run = dkd.wait_status(run_id, timeout=90)
    assert run["status"] == "COMPLETED", run
    # resumed by replay: a new try, not counted (so still attempt 1), whose token wait returns
    # from its record
    assert run["attemptCount"] == 1 and run["output"]["attempt"] == 1
    assert run["attempts"][0]["rawStatus"] == "INTERRUPTED", run["attempts"]
    failed = checkpoints(dkd, run_id)[0]
    assert failed["status"] == "failed" and "does not exist" in failed["error"], failed
    assert _container_state(ck["worker_id"]) is None  # the unusable container was removed


def test_a_canceled_checkpointed_run_has_its_container_removed(dkd: DaemonProcess) -> None:
    run_id = dkd.trigger("dk-token", {"token": create_token(dkd, PROJECT)})
    ck = wait_checkpointed(dkd, run_id)[0]
    assert _container_state(ck["worker_id"]) is not None
    assert dkd.api("POST", f"/api/v2/runs/{run_id}/cancel").status_code == 200
    wait_for(lambda: checkpoints(dkd, run_id)[0]["status"] == "deleted", 30,
             what="the checkpoint to be deleted")
    assert _container_state(ck["worker_id"]) is None
    assert not (dkd.home / "freeze" / ck["worker_id"]).exists()


def test_without_checkpoints_the_container_is_held_and_the_run_says_why(
        tmp_path: Path, ck_image: tuple[Path, str]) -> None:
    daemon = _docker_daemon(tmp_path / "home", ck_image, TRIGGER_LOCAL_CHECKPOINTS="off")
    try:
        assert "turned off" in _executor(daemon)["checkpoints"]["reason"]
        token = create_token(daemon, PROJECT)
        run_id = daemon.trigger("dk-token", {"token": token})
        waiting = wait_for(lambda: events(daemon, run_id, "run.waiting"), 60,
                           what="the run to wait")[0]["data"]
        assert waiting["action"] == "hold" and "turned off" in waiting["hold_reason"], waiting
        assert _executor(daemon)["containers"] == 1  # held: the container keeps running in its slot
        complete_token(daemon, token, {"n": 9})
        run = daemon.wait_status(run_id, timeout=60)
        assert run["status"] == "COMPLETED" and run["output"]["local"] == [1, 2, 3, 9], run
        assert checkpoints(daemon, run_id) == []
    finally:
        daemon.close()
        _remove_containers(daemon.home)


def test_a_child_run_wait_is_checkpointed_when_checkpoint_waits_names_it(
        tmp_path: Path, ck_image: tuple[Path, str]) -> None:
    daemon = _docker_daemon(tmp_path / "home", ck_image,
                            TRIGGER_LOCAL_CHECKPOINT_WAITS="duration,token,run")
    try:
        run_id = daemon.trigger("dk-parent", {"n": 21})
        ck = wait_checkpointed(daemon, run_id)[0]
        assert ck["executor"] == "docker"
        run = daemon.wait_status(run_id, timeout=90)
        assert run["status"] == "COMPLETED", run
        assert run["output"] == {"child": {"doubled": 42}, "n": 21, "same_process": True}
        assert checkpoints(daemon, run_id)[0]["status"] == "restored"
    finally:
        daemon.close()
        _remove_containers(daemon.home)


def _finish_on_the_next_daemon(daemon: DaemonProcess, run_id: str, token: str,
                               n: int) -> dict[str, Any]:
    complete_token(daemon, token, {"n": n})
    run = daemon.wait_status(run_id, timeout=90)
    assert run["status"] == "COMPLETED", run
    # the same attempt went on from its wait: the code before it did not run again
    assert (run["output"]["local"] == [1, 2, 3, n] and run["output"]["attempt"] == 1
            and run["attemptCount"] == 1)
    return run


def test_kill_9_inside_the_checkpoint_window_the_run_resumes_from_the_checkpoint(
        tmp_path: Path, ck_image: tuple[Path, str]) -> None:
    """kill -9 after the engine stopped the container for its checkpoint, before the daemon
    recorded it: the pending record lets the next daemon finish it (not a crash, exit 137)."""
    hook = "TRIGGER_LOCAL_TEST_PAUSE_BEFORE_CHECKPOINT_RECORD_S"
    # holds the daemon in the window
    daemon = _docker_daemon(tmp_path / "home", ck_image, **{hook: "60"})
    try:
        token = create_token(daemon, PROJECT)
        run_id = daemon.trigger("dk-token", {"token": token})
        [pending] = wait_for(lambda: [c for c in checkpoints(daemon, run_id)
                                      if c["status"] == "pending"], 60,
                             what="a pending checkpoint")
        wait_for(lambda: (_container_state(pending["worker_id"]) or {}).get("Running") is False, 60,
                 what="the engine to stop the checkpointed container")
        daemon.kill9()
        daemon.env.pop(hook)
        daemon.start()
        assert daemon.run(run_id)["status"] == "WAITING"
        assert checkpoints(daemon, run_id)[0]["status"] == "active"
        _finish_on_the_next_daemon(daemon, run_id, token, 5)
        assert checkpoints(daemon, run_id)[0]["status"] == "restored"
    finally:
        daemon.close()
        _remove_containers(daemon.home)


@pytest.mark.parametrize("checkpoints_setting", ["auto", "off"])
def test_a_normal_stop_keeps_a_held_waiting_container_for_the_next_daemon(
        tmp_path: Path, ck_image: tuple[Path, str], checkpoints_setting: str) -> None:
    """Token waits are held (not in checkpoint_waits, or checkpoints off) until SIGTERM: the stop
    checkpoints the container when it can, else leaves it running for the next daemon to adopt."""
    daemon = _docker_daemon(tmp_path / "home", ck_image, TRIGGER_LOCAL_CHECKPOINT_WAITS="duration",
                            TRIGGER_LOCAL_CHECKPOINTS=checkpoints_setting)
    try:
        token = create_token(daemon, PROJECT)
        run_id = daemon.trigger("dk-token", {"token": token})
        wait_for(lambda: events(daemon, run_id, "run.waiting"), 60, what="the run to wait")
        [worker] = _docker("ps", "-a", "--format", "{{.Names}}", "--filter",
                           f"label=dev.trigger-local.home={daemon.home}").stdout.split()
        assert daemon.stop() == 0
        state = _container_state(worker)
        assert state is not None and state["Running"] is (checkpoints_setting == "off"), state
        daemon.start()
        assert daemon.run(run_id)["status"] == "WAITING"
        _finish_on_the_next_daemon(daemon, run_id, token, 6)
        assert [c["status"] for c in checkpoints(daemon, run_id)] == (
            ["restored"] if checkpoints_setting == "auto" else [])
    finally:
        daemon.close()
        _remove_containers(daemon.home)
