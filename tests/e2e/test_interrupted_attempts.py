"""Interrupted attempts (docs/architecture.md, "Crash safety"): a run the daemon interrupts at a
normal stop goes back to its queue without using an attempt. The API, the CLI and the task's
ctx agree: the interrupted attempt is shown as INTERRUPTED, the next try has the same
`ctx.attempt.number`, and `attemptCount` counts only attempts that counted — so a run with
`maxAttempts: 1` stopped several times still completes, as attempt 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import DaemonProcess, write_project

TASKS = '''
import asyncio, os
from pathlib import Path
from trigger_local import task, logger

@task(id="gated")
async def gated(payload, ctx):
    logger.info("attempt", number=ctx.attempt.number)
    gate = Path(payload["gate"])
    while not gate.exists():  # executing (not a wait): a stop interrupts it
        await asyncio.sleep(0.05)
    return {"attempt": ctx.attempt.number, "max": ctx.run.max_attempts}
'''


def test_a_run_interrupted_by_stops_completes_as_attempt_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_CHECKPOINTS": "off",
                                 "TRIGGER_LOCAL_SHUTDOWN_GRACE_S": "0.5"})
    try:
        d.start()
        d.register(write_project(tmp_path / "project", TASKS))
        gate = tmp_path / "gate"
        run_id = d.trigger("gated", {"gate": str(gate)}, maxAttempts=1)
        stops = 3
        for _ in range(stops):
            d.wait_status(run_id, "EXECUTING")
            assert d.stop() == 0
            d.start()
            # back in its queue, attempt not used (it starts again once the dispatcher runs)
            run = d.run(run_id)
            assert run["status"] in ("QUEUED", "DEQUEUED", "EXECUTING"), run
            assert run["attemptCount"] <= 1, run
        d.wait_status(run_id, "EXECUTING")
        gate.write_text("open")
        run = d.wait_status(run_id)
        assert run["status"] == "COMPLETED", run
        assert run["output"] == {"attempt": 1, "max": 1}, run
        assert run["attemptCount"] == 1, run
        attempts = run["attempts"]
        assert [a["status"] for a in attempts] == ["INTERRUPTED"] * stops + ["COMPLETED"], attempts
        assert [a["number"] for a in attempts] == [1] * (stops + 1), attempts
        assert [a["counts"] for a in attempts] == [False] * stops + [True], attempts
        # every try logged attempt 1
        logs = d.api("GET", f"/api/v1/runs/{run_id}/logs").json()
        numbers = [line.get("attributes", {}).get("number") for line in logs.get("data", logs)
                   if isinstance(line, dict) and line.get("message") == "attempt"]
        assert numbers and set(numbers) == {1}, logs
        env = {**os.environ, "TRIGGER_LOCAL_HOME": str(home), "COLUMNS": "200"}
        shown = subprocess.run([sys.executable, "-m", "trigger_local", "runs", "show", run_id],
                               capture_output=True, text=True, env=env, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.count("INTERRUPTED") == stops, shown.stdout
        assert "FAILED" not in shown.stdout, shown.stdout
        attempts_line = next(line for line in shown.stdout.splitlines()
                             if line.strip().startswith("Attempts"))
        assert attempts_line.split()[-1] == "1", attempts_line
    finally:
        d.close()
