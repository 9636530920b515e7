"""A task process that dies while the daemon is down leaves no log spool behind once a daemon
starts again (review rv8d: adopt() forgot the worker and left its spool on disk for good) — when
no dump of it exists: a process CRIU froze is gone too, and keeps its spool
(tests/e2e/test_stop_keeps_waits.py, a kill -9 between a dump and its record)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from .conftest import DaemonProcess, wait_for, write_project

SLEEPER = '''
import os, time
from trigger_local import task

@task(id="sleeper", isolated=True)
def sleeper(payload, ctx):
    print("a line of the first attempt")
    if ctx.attempt.number == 1:
        with open(payload["pidfile"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(600)
    return "done"
'''


def test_a_process_dead_while_the_daemon_was_down_leaves_no_spool(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pidfile = tmp_path / "task.pid"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)})
    d.start()
    try:
        d.register(write_project(tmp_path / "proj", SLEEPER))
        run_id = d.trigger("sleeper", {"pidfile": str(pidfile)})
        wait_for(lambda: pidfile.exists() and pidfile.read_text(), 60, what="the task's pid")
        spools = list(home.rglob("*.spool"))
        assert spools, "the isolated task has a spool"
        d.kill9()
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        d.start()
        # the restarted daemon found the process gone (the run is resumed by replay)
        wait_for(lambda: d.run(run_id)["attempts"][0]["status"] == "INTERRUPTED", 60,
                 what="the run to be taken from the dead process")
        left = [p for p in spools if p.exists()]
        wait_for(lambda: all(not p.exists() or p.stat().st_size == 0 for p in spools), 20,
                 what=f"the dead process's spool to be gone: {[p.read_text() for p in left]}")
    finally:
        d.close()
