"""CRIU checkpoint/restore of waiting runs with the process executor: real CRIU, real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DaemonProcess, wait_for
from .criu_support import (
    checkpoints,
    ck_project,  # noqa: F401 (the ckd fixture)
    complete_token,
    create_token,
    wait_checkpointed,
)

pytestmark = pytest.mark.slow


def _status(d: DaemonProcess) -> dict:
    return dict(d.api("GET", "/api/v1/local/status").json())


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_duration_wait_is_checkpointed_and_restored_with_locals(ckd: DaemonProcess) -> None:
    assert _status(ckd)["executor"]["checkpoints"]["available"] is True
    run_id = ckd.trigger("ck-duration", {"seconds": 3})
    ck = wait_checkpointed(ckd, run_id)[0]
    assert ck["size_bytes"] > 100_000 and ck["dump_ms"] > 0
    run = ckd.run(run_id)
    assert run["status"] == "WAITING"
    assert not _pid_alive(ck["pid"]) or ckd.run(run_id)["status"] != "WAITING"  # frozen: no process
    run = ckd.wait_status(run_id, timeout=30)
    assert run["status"] == "COMPLETED", run
    out = run["output"]
    assert (out["counter"] == 42 and out["blob_ok"]
            and out["pid_before"] == out["pid_after"] == ck["pid"])
    assert run["attemptCount"] == 1
    done = checkpoints(ckd, run_id)[0]
    assert done["status"] == "restored" and done["restore_ms"] > 0
    # images are deleted once used (by a job of the daemon's, after the restore: wait for it)
    wait_for(lambda: not Path(done["path"]).exists(), 30, what="the used images to be deleted")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    shown = subprocess.run([sys.executable, "-m", "trigger_local", "runs", "show", run_id],
                           capture_output=True,
                           text=True, env={**env, "TRIGGER_LOCAL_HOME": str(ckd.home)}, timeout=60)
    assert "Checkpoints" in shown.stdout and "restored" in shown.stdout, shown.stdout + shown.stderr


def test_two_token_waits_each_checkpoint_and_frees_the_process(ckd: DaemonProcess) -> None:
    t1, t2 = create_token(ckd), create_token(ckd)
    run_id = ckd.trigger("ck-token", {"token": t1, "token2": t2})
    ck = wait_checkpointed(ckd, run_id)[0]
    wait_for(lambda: not _pid_alive(ck["pid"]), 10, what="the frozen process to be gone")
    status = _status(ckd)["executor"]
    assert (status["checkpoints"]["count"] == 1
            and status["checkpoints"]["bytes"] == ck["size_bytes"])
    assert status["processes"] <= 1  # the frozen one does not count (at most an idle warm one)
    complete_token(ckd, t1, {"n": 4})
    wait_checkpointed(ckd, run_id, 2)
    complete_token(ckd, t2, {"n": 5})
    run = ckd.wait_status(run_id, timeout=30)
    assert run["status"] == "COMPLETED", run
    assert run["output"] == {"local": [1, 2, 3, 4, 5], "pid": ck["pid"], "attempt": 1}
    assert _status(ckd)["executor"]["checkpoints"]["count"] == 0


def test_restored_process_is_the_daemons_child_and_its_pid_is_free_once_dumped(
        ckd: DaemonProcess) -> None:
    # A restored process left to init kept its pid as a zombie after its next dump until init
    # reaped it (up to 2 s here), and the next restore waited for that pid.
    assert ckd.proc is not None
    t1, t2 = create_token(ckd), create_token(ckd)
    run_id = ckd.trigger("ck-parent", {"tokens": [t1, t2]})
    pid = wait_checkpointed(ckd, run_id)[0]["pid"]
    assert not _pid_alive(pid)  # reaped before the checkpoint is recorded
    complete_token(ckd, t1, 1)
    assert wait_checkpointed(ckd, run_id, 2)[1]["pid"] == pid
    # the restored process, dumped again: reaped by the daemon, no zombie
    assert not _pid_alive(pid)
    complete_token(ckd, t2, 2)
    run = ckd.wait_status(run_id, timeout=30)
    assert run["status"] == "COMPLETED", run
    assert run["output"] == {"parents": [ckd.proc.pid] * 3, "pid": pid}


def test_kill_9_daemon_with_checkpointed_runs_they_still_resume(ckd: DaemonProcess) -> None:
    tokens = [create_token(ckd) for _ in range(3)]
    runs = [ckd.trigger("ck-token", {"token": t}) for t in tokens]
    for run_id in runs:
        wait_checkpointed(ckd, run_id)
    ckd.kill9()
    ckd.start()
    for i, token in enumerate(tokens):
        complete_token(ckd, token, {"n": i})
    for i, run_id in enumerate(runs):
        run = ckd.wait_status(run_id, timeout=40)
        assert run["status"] == "COMPLETED", run
        assert run["output"]["local"] == [1, 2, 3, i] and run["attemptCount"] == 1


def test_canceled_checkpointed_run_has_its_images_deleted(ckd: DaemonProcess) -> None:
    run_id = ckd.trigger("ck-token", {"token": create_token(ckd)})
    ck = wait_checkpointed(ckd, run_id)[0]
    assert Path(ck["path"]).is_dir()
    assert ckd.api("POST", f"/api/v2/runs/{run_id}/cancel").status_code == 200
    wait_for(lambda: checkpoints(ckd, run_id)[0]["status"] == "deleted", 10,
             what="the checkpoint to be deleted")
    assert not Path(ck["path"]).exists()
    assert os.listdir(Path(ck["path"]).parent.parent) == []
