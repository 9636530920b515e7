"""`trigger-local dashboard` run without a terminal (its output piped or sent to a file, as in
a script or CI): it used to draw the screen's escape sequences into the pipe and wait for keys
forever. It exits 1 at once with one line saying what to use instead. A real daemon, and the
real command in a subprocess with pipes."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import DaemonProcess


def test_the_dashboard_without_a_terminal_says_so_and_exits_1(daemon: DaemonProcess) -> None:
    env = {**os.environ, "TRIGGER_LOCAL_HOME": str(daemon.home), "TRIGGER_API_URL": daemon.url}
    env.pop("TRIGGER_SECRET_KEY", None)
    try:
        done = subprocess.run([sys.executable, "-m", "trigger_local", "dashboard"], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired:
        raise AssertionError("without a terminal the dashboard opened, and did not exit within "
                             "30 s") from None
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert done.stdout == "" and "\x1b[" not in done.stderr, done.stderr
    said = " ".join(done.stderr.split())
    assert said.startswith("Error: The dashboard needs a terminal"), said
    assert "trigger-local runs ls --json" in said and "Traceback" not in said, said
