"""CRIU failure paths: every one leaves the run held (alive), resumes it by replay (a dump
that fails at run time) or fails the attempt for a retry — never a run stuck in WAITING. Disk
full is a real 4 MiB tmpfs mounted as the checkpoint dir."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DaemonProcess, wait_for, write_project
from .criu_support import (
    CK_TASKS,
    checkpoints,
    ck_daemon,
    complete_token,
    create_token,
    events,
    require_criu,
    wait_checkpointed,
)
from .replay_support import worker_pids

pytestmark = pytest.mark.slow


def _daemon(tmp_path: Path, **env: str) -> DaemonProcess:
    d = ck_daemon(tmp_path, **env).start()
    d.register(write_project(tmp_path / "project", CK_TASKS))
    return d


def _doctor(d: DaemonProcess, *args: str, command: str = "doctor") -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    env["TRIGGER_LOCAL_HOME"] = str(d.home)
    done = subprocess.run([sys.executable, "-m", "trigger_local", command, *args],
                          capture_output=True, text=True, env=env, timeout=60)
    return done.stdout + done.stderr


def _held_then_completes(d: DaemonProcess, task: str = "ck-token", *, refused: bool = False,
                         **payload: object) -> dict:
    token = create_token(d)
    run_id = d.trigger(task, {"token": token, **payload})
    waiting = wait_for(lambda: events(d, run_id, "run.waiting"), 30, what="the run to wait")[0]
    if refused:  # a wait completed before the dump begins is not dumped at all: let it fail first
        wait_for(lambda: events(d, run_id, "run.checkpoint_failed"), 30,
                 what="the checkpoint to fail")
    complete_token(d, token, {"n": 7})
    run = d.wait_status(run_id, timeout=30)
    assert run["status"] == "COMPLETED" and run["attemptCount"] == 1, run
    assert checkpoints(d, run_id) == []
    return {"run_id": run_id, "waiting": waiting["data"]}


@pytest.mark.parametrize("problem", ["missing", "check-fails"])
def test_without_working_criu_runs_are_held_and_doctor_explains(
        tmp_path: Path, problem: str) -> None:
    criu = str(tmp_path / "no-such-criu")
    if problem == "check-fails":  # a CRIU too old for the kernel, as Debian 12's 3.17 is
        fake = tmp_path / "criu"
        fake.write_text("#!/bin/sh\n[ \"$1\" = --version ] && echo 'Version: 3.17' && exit 0\n"
                        "echo 'Error (criu/vdso.c:1): Unexpected rt vDSO area bounds'\n"
                        "echo 'Error (criu/kerndat.c:1906): kerndat_vdso_fill_symtable failed "
                        "when initializing kerndat.'; exit 1\n")
        fake.chmod(0o755)
        criu = str(fake)
    d = _daemon(tmp_path, TRIGGER_LOCAL_CRIU_PATH=criu)
    try:
        status = d.api("GET", "/api/v1/local/status").json()["executor"]["checkpoints"]
        assert status["available"] is False
        expected = "not installed" if problem == "missing" else "criu check"
        assert expected in status["reason"]
        done = _held_then_completes(d)
        assert done["waiting"]["action"] == "hold" and expected in done["waiting"]["hold_reason"]
        if os.geteuid() == 0:
            said = _doctor(d)
            assert ("holds waiting runs instead of checkpointing" in said
                    and "setup-criu.sh" in said), said
        if problem == "check-fails":  # one short line; CRIU's words on demand
            line = next(x for x in _doctor(d, command="status").splitlines()
                        if x.strip().startswith("checkpoints"))
            assert "`criu check` fails with CRIU 3.17" in line and "vdso" not in line, line
            assert "kerndat" in status["detail"] and "kerndat" not in status["reason"], status
            assert "vdso" not in _doctor(d)
            assert "| Error (criu/kerndat.c:1906)" in _doctor(d, "--verbose")
    finally:
        d.close()


def _evicted_then_completes(d: DaemonProcess, *, refused: bool = False) -> dict:
    """A ck-token run, held; it leaves memory once it waited hold_threshold_s (1 s here): its
    process ends, and the original token completes it by replay, no retry counted."""
    token = create_token(d)
    run_id = d.trigger("ck-token", {"token": token})
    waiting = wait_for(lambda: events(d, run_id, "run.waiting"), 30, what="the run to wait")[0]
    if refused:
        wait_for(lambda: events(d, run_id, "run.checkpoint_failed"), 30,
                 what="the checkpoint to fail")
    evicted = wait_for(lambda: events(d, run_id, "run.evicted"), 30, what="the run evicted")[0]
    wait_for(lambda: not worker_pids(d.home), 30, what="its task process to end")
    assert d.run(run_id)["status"] == "WAITING"
    complete_token(d, token, {"n": 7})
    run = d.wait_status(run_id, timeout=60)
    assert run["status"] == "COMPLETED" and run["attemptCount"] == 1, run
    assert run["output"]["local"] == [1, 2, 3, 7] and run["output"]["attempt"] == 1, run
    assert events(d, run_id, "run.replayed"), "it resumed by replay"
    assert checkpoints(d, run_id) == []
    return {"run_id": run_id, "waiting": waiting["data"], "evicted": evicted["data"]}


def test_a_dump_failing_at_run_time_switches_the_daemon_to_replay(tmp_path: Path) -> None:
    """`criu check` passes, yet every dump fails (as with "Can't setup RLIMIT_NOFILE" in some
    containers): after the first failure the daemon stops trying CRIU and resumes waiting runs
    by replay instead — each leaves memory once it waited hold_threshold_s, the one whose dump
    failed too — and its status and doctor say why."""
    fake = tmp_path / "criu"
    fake.write_text("#!/bin/sh\ncase \"$1\" in\n--version) echo 'Version: 4.1.1';;\n"
                    "check) echo 'Looks good.';;\n"
                    "*) echo \"Error (criu/rlimit.c:1): Can't setup RLIMIT_NOFILE\"; exit 1;;\n"
                    "esac\n")
    fake.chmod(0o755)
    d = _daemon(tmp_path, TRIGGER_LOCAL_CRIU_PATH=str(fake))
    try:
        assert d.api("GET", "/api/v1/local/status").json()["executor"]["checkpoints"]["available"]
        first = _evicted_then_completes(d, refused=True)
        assert first["waiting"]["action"] == "checkpoint"
        failed = events(d, first["run_id"], "run.checkpoint_failed")
        assert "RLIMIT_NOFILE" in failed[0]["data"]["reason"], failed
        assert "resumes by replay" in failed[0]["data"]["reason"], failed
        assert "hold_threshold_s" in first["evicted"]["reason"], first
        status = d.api("GET", "/api/v1/local/status").json()["executor"]["checkpoints"]
        assert status["available"] is False and status["replays"] is True, status
        assert "failed at run time" in status["reason"] and "RLIMIT_NOFILE" in status["reason"]
        assert "by replay" in status["reason"], status
        second = _evicted_then_completes(d)
        assert second["waiting"]["action"] == "hold"
        assert "failed at run time" in second["waiting"]["hold_reason"]
        assert events(d, second["run_id"], "run.checkpoint_failed") == []
        if os.geteuid() == 0:
            said = _doctor(d)
            assert "resumes waiting runs by replay" in said and "failed at run time" in said \
                and "restart" in said, said
    finally:
        d.close()


@pytest.fixture
def criu_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    require_criu()
    d = _daemon(tmp_path)
    yield d
    d.close()


def test_process_holding_a_tcp_connection_is_held_not_frozen(criu_daemon: DaemonProcess) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        # refused=True: completed before its dump began, the run would never be refused at all
        done = _held_then_completes(criu_daemon, "ck-holds-socket", refused=True,
                                    port=server.getsockname()[1])
    refused = events(criu_daemon, done["run_id"], "run.checkpoint_failed")
    assert refused and "TCP connection" in refused[0]["data"]["reason"]


def test_dump_failing_mid_way_on_a_full_disk_keeps_the_process(tmp_path: Path) -> None:
    require_criu()
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {mounted.stderr.decode().strip()}")
    d = _daemon(tmp_path, TRIGGER_LOCAL_CHECKPOINT_DIR=str(small))
    try:
        done = _held_then_completes(d, refused=True)
        failed = events(d, done["run_id"], "run.checkpoint_failed")
        assert failed and "criu dump" in failed[0]["data"]["reason"], failed
        assert os.listdir(small) == []  # the partial images were removed
    finally:
        d.close()
        subprocess.run(["umount", str(small)], check=False)


@pytest.mark.parametrize("damage", ["pages-deleted", "directory-deleted"])
def test_failed_restore_resumes_the_run_by_replay(criu_daemon: DaemonProcess,
                                                 damage: str) -> None:
    """The attempt ends INTERRUPTED (not counted); the next one replays the run's records: the
    completed token wait returns from its record (docs/durability.md)."""
    token = create_token(criu_daemon)
    run_id = criu_daemon.trigger("ck-token", {"token": token})
    images = Path(wait_checkpointed(criu_daemon, run_id)[0]["path"])
    if damage == "pages-deleted":
        for page in images.glob("pages-*.img"):
            page.unlink()
    else:
        shutil.rmtree(images)
    complete_token(criu_daemon, token, {"n": 9})
    run = criu_daemon.wait_status(run_id, timeout=40)
    assert run["status"] == "COMPLETED", run
    # the interrupted try does not count: the replaying one is attempt 1 again (docs/durability.md)
    assert run["output"]["attempt"] == 1 and run["output"]["local"] == [1, 2, 3, 9]
    first = run["attempts"][0]
    assert first["rawStatus"] == "INTERRUPTED"
    assert "Restoring the run's checkpoint failed" in first["error"]["message"]
    assert "the run resumes by replay" in first["error"]["message"]
    expected = "restore.log" if damage == "pages-deleted" else "images are gone"
    assert expected in first["error"]["message"], first["error"]
    assert checkpoints(criu_daemon, run_id)[0]["status"] == "failed"


def test_wait_completed_before_the_dump_begins_is_not_dumped(criu_daemon: DaemonProcess) -> None:
    run_id = criu_daemon.trigger("ck-completes-own-token", {"token": create_token(criu_daemon)})
    run = criu_daemon.wait_status(run_id, timeout=30)
    assert run["status"] == "COMPLETED" and run["output"]["n"] == 1, run
    assert events(criu_daemon, run_id, "run.waiting")  # it did wait (and was asked to freeze)
    # no dump and restore for a run that no longer waits (unless the connection outlived the
    # daemon's socket wait on a loaded machine: then the checkpoint was refused, also no dump)
    assert checkpoints(criu_daemon, run_id) == []
