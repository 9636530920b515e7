"""Group commit against a real daemon: completions acknowledged together (one transaction, see
`GroupCommit` in engine/unit.py) are durable — kill -9 right after the answers, and every one
is still there."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from .conftest import DaemonProcess, wait_for

RUNS = 6


def test_acknowledged_completions_survive_kill_9(ready: DaemonProcess) -> None:
    # the task processes sleep; the test reports their attempts' ends itself, all at once,
    # as the worker protocol does (the daemon's key is accepted where a run token is)
    ids = [ready.trigger("sleeper", {"seconds": 120}) for _ in range(RUNS)]
    wait_for(lambda: all(ready.run(i)["status"] == "EXECUTING" for i in ids), 60,
             interval=0.1, what="every run to execute")
    start = threading.Barrier(RUNS)

    def complete(run_id: str) -> httpx.Response:
        with httpx.Client(base_url=ready.url, timeout=30,
                          headers={"Authorization": f"Bearer {ready.key}"}) as client:
            start.wait()
            return client.post(f"/engine/v1/runs/{run_id}/attempts/1/complete",
                               json={"ok": True, "output": json.dumps({"by": run_id}),
                                     "outputType": "application/json"})

    with ThreadPoolExecutor(RUNS) as pool:
        answers = list(pool.map(complete, ids))
    assert [a.status_code for a in answers] == [200] * RUNS, [a.text for a in answers]
    assert {a.json()["status"] for a in answers} == {"COMPLETED"}
    ready.kill9()  # at once: nothing after the answers may be needed to keep them
    ready.start()
    for run_id in ids:
        run = ready.run(run_id)
        assert (run["status"], run["output"]) == ("COMPLETED", {"by": run_id}), run
