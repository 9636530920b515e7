"""One daemon per home: a second one exits 1 naming the first (pid and url), even when
daemon.json is gone; `down` still finds the first; the lock dies with its daemon (kill -9
included) and no task process inherits it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DaemonProcess, write_project


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "TRIGGER_LOCAL_HOME": str(home)}


def _must_exit(argv: list[str], home: Path,
               timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command that must give up at once; a daemon that starts instead fails the test."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(home), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"{argv[2:]} started a second daemon on {home} instead of refusing")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def _cli(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "trigger_local", *args, "--home", str(home)]


def test_second_daemon_on_one_home_exits_1_naming_the_first(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
    try:
        first.register(write_project(tmp_path / "project"))
        (home / "daemon.json").unlink()  # only the lock is left to tell
        assert first.proc is not None
        expected = (f"A daemon is already running for {home} (pid {first.proc.pid}, {first.url}). "
                    "Stop it with `trigger-local down`.")
        second = _must_exit([sys.executable, "-m", "trigger_local.daemon", "--home", str(home),
                             "--port", "0"], home)
        assert second.returncode == 1
        assert second.stderr.strip() == f"error: {expected}"
        up = _must_exit(_cli(home, "up", "--port", "0"), home)
        assert up.returncode == 1 and expected in " ".join(up.stderr.split()), up.stderr
        detached = _must_exit(_cli(home, "up", "--detach", "--port", "0"), home)
        assert (detached.returncode == 1
                and "A daemon is already running" in detached.stderr), detached.stderr
        # the first one is unharmed and still does its work
        assert first.wait_status(first.trigger("hello", {"name": "first"}))["status"] == "COMPLETED"
        down = subprocess.run(_cli(home, "down"), capture_output=True, text=True, env=_env(home),
                              timeout=60)
        assert down.returncode == 0, down.stderr
        assert first.proc.wait(30) == 0  # `down` found it through the lock
    finally:
        first.close()


def test_lock_is_released_by_kill_9_and_not_held_by_task_processes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
    try:
        d.register(write_project(tmp_path / "project"))
        # a warm process, still alive
        task_pid = d.wait_status(d.trigger("hello", {}))["output"]["pid"]
        lock = home / "daemon.lock"
        held = [os.readlink(f"/proc/{task_pid}/fd/{fd}")
                for fd in os.listdir(f"/proc/{task_pid}/fd")]
        assert str(lock) not in held
        d.kill9()
        os.kill(task_pid, 0)  # the task process outlives the daemon ...
        d.start()  # ... and does not keep the next daemon out
        assert d.wait_status(d.trigger("hello", {}))["status"] == "COMPLETED"
    finally:
        d.close()
