"""Log lines logged just before the task process dies are kept: a real daemon, real task
processes that kill themselves with SIGKILL right after logging; the lines show in `runs logs`,
each once (the bursts sent before the death are not stored twice)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import DaemonProcess, write_project

CRASHING = '''
import os, signal
from trigger_local import Retry, logger, task

@task(id="crash-sync", retry=Retry(max_attempts=1))
def crash_sync(payload, ctx):
    logger.info("crashing")
    os.kill(os.getpid(), signal.SIGKILL)

@task(id="crash-many", retry=Retry(max_attempts=1), isolated=True)  # has a spool
async def crash_many(payload, ctx):
    for n in range(payload["lines"]):
        logger.info(f"line {n}")
    print("printed last")
    os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_line_logged_just_before_a_sigkill_is_in_runs_logs(daemon: DaemonProcess,
                                                              tmp_path: Path) -> None:
    daemon.register(write_project(tmp_path / "crashproj", CRASHING))
    run_id = daemon.trigger("crash-sync", {})
    run = daemon.wait_status(run_id)
    assert run["status"] in ("CRASHED", "FAILED", "SYSTEM_FAILURE"), run
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(daemon.home), "COLUMNS": "200"}
    env.pop("TRIGGER_API_URL", None)
    env.pop("TRIGGER_SECRET_KEY", None)
    r = subprocess.run([sys.executable, "-m", "trigger_local", "runs", "logs", run_id],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "crashing" in r.stdout, r.stdout


def test_every_line_before_a_sigkill_is_stored_once(daemon: DaemonProcess,
                                                    tmp_path: Path) -> None:
    daemon.register(write_project(tmp_path / "crashproj", CRASHING))
    run_id = daemon.trigger("crash-many", {"lines": 250})  # bursts of 100 go out meanwhile
    daemon.wait_status(run_id)
    messages = daemon.log_messages(run_id)
    assert messages == [f"line {n}" for n in range(250)] + ["printed last"], messages[-5:]
