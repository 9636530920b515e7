"""A line a task process logged while no daemon ran, before it died, is in `runs logs` once the
next daemon adopts what is left: adoption stores the lines its spool holds and the daemon never
got, then removes the spool (review rv9c: the spool's removal lost them for good)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from .conftest import DaemonProcess, wait_for, write_project

TASK = '''
import os, time
from pathlib import Path
from trigger_local import logger, task

@task(id="sleeper", isolated=True)
def sleeper(payload, ctx):
    if not Path(payload["logged"]).exists():
        Path(payload["pidfile"]).write_text(str(os.getpid()))
        while not Path(payload["go"]).exists():
            time.sleep(0.05)
        logger.info("logged while no daemon ran")
        Path(payload["logged"]).write_text("1")  # the line is in the spool (write-through)
        time.sleep(600)
    return "done"
'''


def test_a_line_logged_while_no_daemon_ran_survives_the_process_death(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pidfile, go, logged = tmp_path / "task.pid", tmp_path / "go", tmp_path / "logged"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)})
    d.start()
    try:
        d.register(write_project(tmp_path / "proj", TASK))
        run_id = d.trigger("sleeper", {"pidfile": str(pidfile), "go": str(go),
                                       "logged": str(logged)})
        wait_for(lambda: pidfile.exists() and pidfile.read_text(), 60, what="the task's pid")
        d.kill9()
        go.write_text("1")
        wait_for(logged.exists, 30, what="the line logged while no daemon ran")
        spools = list(home.rglob("*.spool"))
        assert any("logged while no daemon ran" in p.read_text() for p in spools)
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        d.start()
        wait_for(lambda: d.run(run_id)["attempts"][0]["status"] == "INTERRUPTED", 60,
                 what="the run to be taken from the dead process")
        assert d.wait_status(run_id, timeout=60)["status"] == "COMPLETED"
        assert "logged while no daemon ran" in d.log_messages(run_id), d.log_messages(run_id)
    finally:
        d.close()
