"""A normal stop (SIGTERM, `trigger-local down`, `dev`'s Ctrl-C) costs a waiting run nothing:
its held process is left running and adopted by the next daemon, or (CRIU) it is checkpointed
before the daemon exits. Either way the ORIGINAL token completes the run and the code before the
wait does not run again. Runs that were executing go back to their queue without using an
attempt (docs/architecture.md, "Crash safety")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from pg_cluster import free_port

from .conftest import DaemonProcess, _kill_workers, wait_for, write_project
from .criu_support import complete_token, require_criu

pytestmark = pytest.mark.slow

STOP_TASKS = '''
import asyncio, os
from trigger_local import task, wait, metadata

@task(id="side-effect-then-token", isolated=True)
async def side_effect_then_token(payload, ctx):
    with open(payload["file"], "a") as fh:
        fh.write(f"attempt {ctx.attempt.number} pid {os.getpid()}\\n")
    token = await wait.create_token(timeout="1h")  # no idempotency key: the default user code
    metadata.set("token", token.id)
    result = await wait.for_token(token)
    return {"output": result.output, "pid": os.getpid(), "attempt": ctx.attempt.number}

@task(id="long-sleeper", isolated=True)
async def long_sleeper(payload, ctx):
    with open(payload["file"], "a") as fh:
        fh.write(f"attempt {ctx.attempt.number}\\n")
    await asyncio.sleep(payload["seconds"])
    return {"attempt": ctx.attempt.number}
'''


def stop_daemon(tmp_path: Path, **env: str) -> DaemonProcess:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home), **env}).start()
    d.register(write_project(tmp_path / "project", STOP_TASKS))
    return d


def _token_of(d: DaemonProcess, run_id: str) -> str | None:
    run = d.run(run_id)
    token = (run.get("metadata") or {}).get("token")
    return str(token) if run["status"] == "WAITING" and token else None


def _tokens(d: DaemonProcess) -> list[dict[str, Any]]:
    r = d.api("GET", "/api/v1/waitpoints/tokens")
    assert r.status_code == 200, r.text
    return list(r.json()["data"])


def _start_waiting_run(d: DaemonProcess, side_file: Path) -> tuple[str, str]:
    run_id = d.trigger("side-effect-then-token", {"file": str(side_file)})
    token = wait_for(lambda: _token_of(d, run_id), 30, what=f"{run_id} to wait on its token")
    return run_id, token


def _finish_after_restart(d: DaemonProcess, run_id: str, token: str,
                          side_file: Path) -> dict[str, Any]:
    complete_token(d, token, {"approved": True})
    run = d.wait_status(run_id, timeout=30)
    assert run["status"] == "COMPLETED", run
    assert run["output"]["output"] == {"approved": True}
    assert run["attemptCount"] == 1, run
    lines = side_file.read_text().splitlines()
    assert len(lines) == 1, lines  # the code before the wait ran once
    assert [t["id"] for t in _tokens(d)] == [token]  # no second token
    return run


def cli_down(d: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`trigger-local down` (what `dev`'s Ctrl-C does too: SIGTERM to the daemon it started)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    done = subprocess.run([sys.executable, "-m", "trigger_local", "down", "--home", str(d.home),
                           *args],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert d.proc is not None
    d.proc.wait(10)
    return done


@pytest.mark.parametrize("how", ["sigterm", "down"])
def test_a_normal_stop_leaves_a_held_waiting_process_running_and_the_next_daemon_adopts_it(
        tmp_path: Path, how: str) -> None:
    d = stop_daemon(tmp_path, TRIGGER_LOCAL_CHECKPOINTS="off")
    try:
        side_file = tmp_path / "side-effect.txt"
        run_id, token = _start_waiting_run(d, side_file)
        pid = int(side_file.read_text().split()[-1])
        if how == "sigterm":
            assert d.stop() == 0
        else:
            cli_down(d)
        d.start()
        run = _finish_after_restart(d, run_id, token, side_file)
        assert run["output"]["pid"] == pid  # the same process finished it
    finally:
        d.close()


def _checkpoints(d: DaemonProcess, run_id: str) -> list[dict[str, Any]]:
    r = d.api("GET", f"/api/v1/runs/{run_id}/trace")
    assert r.status_code == 200, r.text
    return list(r.json()["checkpoints"])


def test_sigterm_checkpoints_a_held_waiting_run_with_criu_and_the_next_daemon_restores_it(
        tmp_path: Path) -> None:
    """CRIU works, but token waits are held (not in checkpoint_waits) until the stop: the stop
    checkpoints the held process, and the next daemon restores it when the token completes."""
    require_criu()
    d = stop_daemon(tmp_path, TRIGGER_LOCAL_CHECKPOINT_WAITS="duration")
    try:
        side_file = tmp_path / "side-effect.txt"
        run_id, token = _start_waiting_run(d, side_file)
        pid = int(side_file.read_text().split()[-1])
        assert _checkpoints(d, run_id) == []  # held, not checkpointed, before the stop
        assert d.stop() == 0
        assert not Path(f"/proc/{pid}").exists(), "checkpointed at stop: the process is gone"
        d.start()
        [ck] = _checkpoints(d, run_id)
        assert ck["status"] == "active" and ck["pid"] == pid, ck
        assert d.run(run_id)["status"] == "WAITING"
        run = _finish_after_restart(d, run_id, token, side_file)
        assert run["output"]["pid"] == pid  # restored: the same process, its locals intact
        assert _checkpoints(d, run_id)[0]["status"] == "restored"
    finally:
        d.close()


def test_sigterm_keeps_an_already_checkpointed_waiting_run(tmp_path: Path) -> None:
    require_criu()
    d = stop_daemon(tmp_path)
    try:
        side_file = tmp_path / "side-effect.txt"
        run_id, token = _start_waiting_run(d, side_file)
        wait_for(lambda: any(c["status"] == "active" for c in _checkpoints(d, run_id)), 30,
                 what="the token wait to be checkpointed")
        assert d.stop() == 0
        d.start()
        _finish_after_restart(d, run_id, token, side_file)
    finally:
        d.close()


def test_down_kill_waiting_kills_held_processes_and_their_runs_start_again(tmp_path: Path) -> None:
    d = stop_daemon(tmp_path, TRIGGER_LOCAL_CHECKPOINTS="off")
    try:
        side_file = tmp_path / "side-effect.txt"
        run_id, _ = _start_waiting_run(d, side_file)
        pid = int(side_file.read_text().split()[-1])
        cli_down(d, "--kill-waiting")
        assert not Path(f"/proc/{pid}").exists(), "--kill-waiting kills the held process"
        d.start()
        # interrupted, not failed: the attempt does not count and the run starts from the top
        wait_for(lambda: len(side_file.read_text().splitlines()) == 2, 30,
                 what="the run to start again")
        attempts = d.api("GET", f"/api/v1/runs/{run_id}/trace").json()["attempts"]
        assert attempts[0]["rawStatus"] == "INTERRUPTED", attempts
    finally:
        d.close()


class _Dev:
    """A real `trigger-local dev` in the project, starting its own daemon; its output collected."""

    def __init__(self, project: Path, home: Path, port: int) -> None:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")},
               "TRIGGER_LOCAL_HOME": str(home), "TRIGGER_LOCAL_SHUTDOWN_GRACE_S": "0.5",
               "PYTHONUNBUFFERED": "1", "COLUMNS": "300"}
        self.proc = subprocess.Popen([sys.executable, "-m", "trigger_local", "dev", "--port",
                                      str(port)],
                                     cwd=project, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout or []),
                                       daemon=True)
        self.reader.start()
        wait_for(lambda: "Registered" in self.text() or self.proc.poll() is not None, 60,
                 what="dev to start")
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return "".join(self.lines)

    def ctrl_c(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(60)
        self.reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        assert code == 0, self.text()


def _connect(client: DaemonProcess, home: Path, port: int) -> None:
    """Point `client`'s API helpers at the daemon dev started (its key is in the home)."""
    client.key = (home / "secret_key").read_text().strip()
    client.client = httpx.Client(base_url=f"http://127.0.0.1:{port}",
                                 headers={"Authorization": f"Bearer {client.key}"}, timeout=30)


def test_dev_ctrl_c_interrupts_an_executing_run_and_the_next_dev_says_it_started_again(
        tmp_path: Path) -> None:
    project, home, port = (write_project(tmp_path / "project", STOP_TASKS), tmp_path / "home",
                           free_port())
    side_file = tmp_path / "side-effect.txt"
    dev = _Dev(project, home, port)
    client = DaemonProcess(home, port)  # only its API helpers: dev owns the daemon
    try:
        _connect(client, home, port)
        run_id = client.trigger("long-sleeper", {"file": str(side_file), "seconds": 120})
        wait_for(lambda: side_file.exists(), 30, what="the run to start")
        dev.ctrl_c()
        assert "Stopped the daemon dev started" in dev.text(), dev.text()
        assert "keep their place" not in dev.text()  # an executing run does not
        dev = _Dev(project, home, port)
        # the interrupted attempt did not count: the next try is attempt 1 again
        again = f"{run_id} long-sleeper started again after an interruption (attempt 1"
        wait_for(lambda: again in dev.text(), 30,
                 what="dev to say the interrupted run started again")
        attempts = client.api("GET", f"/api/v1/runs/{run_id}/trace").json()["attempts"]
        assert [a["rawStatus"] for a in attempts] == ["INTERRUPTED", "EXECUTING"], attempts
        assert [a["status"] for a in attempts] == ["INTERRUPTED", "EXECUTING"], attempts
        assert [a["number"] for a in attempts] == [1, 1], attempts
        assert client.run(run_id)["status"] == "EXECUTING"
        client.api("POST", f"/api/v2/runs/{run_id}/cancel")
    finally:
        if dev.proc.poll() is None:
            dev.ctrl_c()
        if client.client is not None:
            client.client.close()
        _kill_workers(home)


def test_dev_ctrl_c_says_how_many_waiting_runs_keep_their_place(tmp_path: Path) -> None:
    """The daemon dev started stops; its waiting runs do not (their processes are left running
    or checkpointed): dev says so, rather than leaving the user to wonder about them."""
    project, home, port = (write_project(tmp_path / "project", STOP_TASKS), tmp_path / "home",
                           free_port())
    dev = _Dev(project, home, port)
    client = DaemonProcess(home, port)  # only its API helpers: dev owns the daemon
    try:
        _connect(client, home, port)
        run_ids = [client.trigger("side-effect-then-token", {"file": str(tmp_path / f"s{i}")})
                   for i in range(2)]
        wait_for(lambda: all(_token_of(client, r) for r in run_ids), 60,
                 what="both runs to wait on their tokens")
        dev.ctrl_c()
        assert "2 runs of proj_test waiting: they keep their place" in dev.text(), dev.text()
    finally:
        if dev.proc.poll() is None:
            dev.ctrl_c()
        if client.client is not None:
            client.client.close()
        _kill_workers(home)


PAUSE_HOOK = "TRIGGER_LOCAL_TEST_PAUSE_BEFORE_CHECKPOINT_RECORD_S"


def test_kill_9_between_a_criu_dump_and_its_record_the_run_resumes_from_the_checkpoint(
        tmp_path: Path) -> None:
    """The window between `criu dump` (the process is gone) and the checkpoint's record: a
    pending record written before the dump lets the next daemon finish it."""
    require_criu()
    # the test hook holds the daemon inside the window
    d = stop_daemon(tmp_path, **{PAUSE_HOOK: "60"})
    try:
        side_file = tmp_path / "side-effect.txt"
        run_id, token = _start_waiting_run(d, side_file)
        pid = int(side_file.read_text().split()[-1])
        wait_for(lambda: [c["status"] for c in _checkpoints(d, run_id)] == ["pending"]
                 and not Path(f"/proc/{pid}").exists(), 30,
                 what="the dump to end with its record pending")
        d.kill9()
        d.env.pop(PAUSE_HOOK)
        d.start()
        [ck] = _checkpoints(d, run_id)
        assert ck["status"] == "active" and ck["size_bytes"] > 0, ck
        assert d.run(run_id)["status"] == "WAITING"
        run = _finish_after_restart(d, run_id, token, side_file)
        assert run["output"]["pid"] == pid
        assert _checkpoints(d, run_id)[0]["status"] == "restored"
    finally:
        d.close()
