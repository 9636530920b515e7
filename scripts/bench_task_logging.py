#!/usr/bin/env python3
"""How much the log spool (trigger_local/log_spool.py) costs a task that logs: a real daemon
in a temporary home, one task that logs N lines with the spool on, then N more with it off, in
the same process, and returns both times. Also checks that every line was stored.

    python scripts/bench_task_logging.py            # 10,000 lines, 3 rounds
    python scripts/bench_task_logging.py --lines 50000 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

TASKS = '''
import time
from trigger_local import logger, task
from trigger_local.sdk.context import current_run

def _log(lines, tag):
    began = time.perf_counter()
    for n in range(lines):
        logger.info(f"{tag} line {n}", n=n)
    return time.perf_counter() - began

def _plain(lines):
    state = current_run()
    spool, state.spool = state.spool, None
    try:
        return _log(lines, "plain")
    finally:
        state.spool = spool

@task(id="log-lines")
async def log_lines(payload, ctx):
    lines = payload["lines"]
    if payload["plain_first"]:  # each order in turn: the first loop of a process is slower
        plain, spooled = _plain(lines), _log(lines, "spooled")
    else:
        spooled, plain = _log(lines, "spooled"), _plain(lines)
    return {"spooled_s": spooled, "plain_s": plain, "spool": current_run().spool is not None}
'''


def _wait(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit("timed out")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-logging-") as tmp:
        home, project = Path(tmp) / "home", Path(tmp) / "project"
        (project / "trigger").mkdir(parents=True)
        (project / "trigger.toml").write_text('project = "proj_bench"\ndirs = ["trigger"]\n')
        (project / "trigger" / "tasks.py").write_text(TASKS)
        env = {**os.environ, "TRIGGER_LOCAL_HOME": str(home)}
        daemon = subprocess.Popen([sys.executable, "-m", "trigger_local.daemon", "--home",
                                   str(home), "--port", "0"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        try:
            _wait(lambda: (home / "daemon.json").exists(), 30)
            url = json.loads((home / "daemon.json").read_text())["url"]
            key = (home / "secret_key").read_text().strip()
            http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                                timeout=60)
            http.post("/api/v1/local/versions",
                      json={"projectDir": str(project), "dirs": ["trigger"]}).raise_for_status()
            results = [_round(http, args.lines, n % 2 == 1) for n in range(args.rounds)]
        finally:
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(30)
    spooled = statistics.median(r["spooled_s"] for r in results)
    plain = statistics.median(r["plain_s"] for r in results)
    print(f"{args.lines:,} logger.info lines in a task, median of {args.rounds}: "
          f"spooled {spooled * 1000:.0f} ms, without the spool {plain * 1000:.0f} ms "
          f"({(spooled / plain - 1) * 100:+.0f}%); load {os.getloadavg()[0]:.2f}")
    print(json.dumps({"lines": args.lines, "spooled_ms": round(spooled * 1000, 1),
                      "plain_ms": round(plain * 1000, 1), "rounds": results}))


def _round(http: httpx.Client, lines: int, plain_first: bool) -> dict[str, Any]:
    body = {"payload": json.dumps({"lines": lines, "plain_first": plain_first}),
            "options": {"payloadType": "application/json"}}
    run_id = http.post("/api/v1/tasks/log-lines/trigger", json=body).json()["id"]
    run = _wait(lambda: (r := http.get(f"/api/v3/runs/{run_id}").json())["status"]
                in ("COMPLETED", "FAILED", "CRASHED", "SYSTEM_FAILURE") and r, 300)
    if run["status"] != "COMPLETED" or not run["output"]["spool"]:
        raise SystemExit(f"the run did not complete with a spool: {run}")
    stored, after = 0, None
    while True:
        page = http.get(f"/api/v1/runs/{run_id}/logs",
                        params={} if after is None else {"after": after}).json()["data"]
        if not page:
            break
        stored, after = stored + len(page), page[-1]["id"]
    if stored != 2 * lines:
        raise SystemExit(f"{stored} lines stored, not {2 * lines}")
    return dict(run["output"])


if __name__ == "__main__":
    main()
