"""Long waits leave memory (issue #13, docs/durability.md "Eviction"), against a real daemon: a
run held waiting longer than `evict_after_s`, or beyond `max_held_runs`, is evicted — its
coroutine dropped or its process ended — and resumes by replay when its wait completes: its
steps are not run again, its attempt number does not change, no retry is counted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .conftest import DaemonProcess, wait_for, write_project
from .replay_support import complete, count, metadata_of, worker_pids

TASKS = '''
import os, time
from pathlib import Path
from trigger_local import task, wait, step, metadata, Retry

def bump(payload, name):
    path = Path(payload["dir"]) / name
    with path.open("a") as f:
        f.write("x")
    return path.read_text().count("x")

async def token_flow(payload, ctx):
    n = await step.run("side-effect", bump, payload, payload.get("name", "effect"))
    token = await wait.create_token(timeout="1h")
    metadata.set("pid", os.getpid())
    metadata.set("token", token.id)
    result = await wait.for_token(token)
    return {"effect": n, "data": result.output, "attempt": ctx.attempt.number,
            "pid": os.getpid()}

@task(id="ev-token", retry=Retry(max_attempts=1))
async def ev_token(payload, ctx):
    return await token_flow(payload, ctx)

@task(id="ev-token-isolated", isolated=True, retry=Retry(max_attempts=1))
async def ev_token_isolated(payload, ctx):
    return await token_flow(payload, ctx)

@task(id="ev-sleep", retry=Retry(max_attempts=1))
async def ev_sleep(payload, ctx):
    t0 = await step.run("t0", lambda: (bump(payload, "effect"), time.time())[1])
    await wait.for_(seconds=payload["seconds"])
    return {"t0": t0, "woke": time.time(), "attempt": ctx.attempt.number}
'''


def _daemon(tmp_path: Path, **settings: str) -> DaemonProcess:
    home = tmp_path / "home"
    env = {"TRIGGER_LOCAL_HOME": str(home), "TRIGGER_LOCAL_CHECKPOINTS": "off",
           **{f"TRIGGER_LOCAL_{k.upper()}": v for k, v in settings.items()}}
    d = DaemonProcess(home, env=env).start()
    try:
        d.register(write_project(tmp_path / "project", TASKS))
    except BaseException:
        d.close()
        raise
    return d


def _events(d: DaemonProcess, run_id: str, type_: str) -> list[dict[str, Any]]:
    r = d.api("GET", f"/api/v1/runs/{run_id}/trace")
    assert r.status_code == 200, r.text
    return [e for e in r.json()["events"] if e["type"] == type_]


def _evicted(d: DaemonProcess, run_id: str, timeout: float = 60) -> dict[str, Any]:
    found: list[dict[str, Any]] = wait_for(lambda: _events(d, run_id, "run.evicted"), timeout,
                                           interval=0.1, what=f"{run_id} to be evicted")
    return found[0]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("State:"):
                return line.lower()
    except OSError:
        pass
    return "zombie"


@pytest.mark.parametrize("task", ["ev-token", "ev-token-isolated"])
def test_a_long_token_wait_leaves_memory_and_resumes_by_replay(tmp_path: Path, task: str) -> None:
    """A shared process is told to drop the coroutine and, hosting no run, exits; an isolated
    run's process is ended. The run stays WAITING; the original token completes it by replay."""
    effects = tmp_path / "effects"
    effects.mkdir()
    d = _daemon(tmp_path, evict_after_s="1")
    try:
        run_id = d.trigger(task, {"dir": str(effects)})
        pid = int(metadata_of(d, run_id, "pid"))
        token = str(metadata_of(d, run_id, "token"))
        evicted = _evicted(d, run_id)
        assert "evict_after_s" in evicted["data"]["reason"], evicted
        wait_for(lambda: not _alive(pid), 30, interval=0.1, what=f"task process {pid} to end")
        wait_for(lambda: not worker_pids(d.home), 30, interval=0.1, what="no task process left")
        run = d.run(run_id)
        assert run["status"] == "WAITING", run
        complete(d, token, {"ok": 7})
        done = d.wait_status(run_id, timeout=60)
        assert done["status"] == "COMPLETED", done
        output = done["output"]
        assert output["effect"] == 1 and count(effects, "effect") == 1, output  # step ran once
        assert output["data"] == {"ok": 7} and output["attempt"] == 1, output
        assert output["pid"] != pid, output  # another process: the replay
        assert done["attemptCount"] == 1, done  # the eviction counted no retry
        assert _events(d, run_id, "run.replayed"), "the run resumed by replay"
    finally:
        d.close()


def test_memory_pressure_evicts_the_longest_waiters_first(tmp_path: Path) -> None:
    """max_held_runs = 2, no time limit: with four waiting, the two oldest are evicted and the
    two newest stay in memory; all four complete, each step once."""
    effects = tmp_path / "effects"
    effects.mkdir()
    d = _daemon(tmp_path, evict_after_s="0", max_held_runs="2")
    try:
        runs: list[str] = []
        for i in range(4):  # one after another: their waits begin in this order
            run_id = d.trigger("ev-token", {"dir": str(effects), "name": f"effect{i}"})
            metadata_of(d, run_id, "token")
            d.wait_status(run_id, "WAITING", timeout=30)
            runs.append(run_id)
        for oldest in runs[:2]:
            evicted = _evicted(d, oldest)
            assert "max_held_runs (2)" in evicted["data"]["reason"], evicted
        for newest in runs[2:]:
            assert _events(d, newest, "run.evicted") == [], newest
        def executor() -> dict[str, Any]:
            found: dict[str, Any] = d.api("GET", "/api/v1/local/status").json()["executor"]
            return found

        wait_for(lambda: executor()["held_runs"] == 2, 30, interval=0.1, what="two runs held")
        assert executor()["eviction"]["evicted"] == 2, executor()
        for run_id in runs:
            complete(d, str(metadata_of(d, run_id, "token")), {"run": run_id})
        for i, run_id in enumerate(runs):
            done = d.wait_status(run_id, timeout=60)
            assert done["status"] == "COMPLETED" and done["attemptCount"] == 1, done
            assert done["output"]["data"] == {"run": run_id}, done
            assert count(effects, f"effect{i}") == 1
        assert [bool(_events(d, r, "run.replayed")) for r in runs] == [True, True, False, False]
    finally:
        d.close()


def test_a_duration_wait_outliving_the_threshold_resumes_by_replay_on_time(
        tmp_path: Path) -> None:
    """`wait.for_(8 s)` with evict_after_s = 1: the run leaves memory, its process exits, and
    the replay keeps the recorded due time (a new 8 s wait would end after t0 + 16 s)."""
    effects = tmp_path / "effects"
    effects.mkdir()
    d = _daemon(tmp_path, evict_after_s="1")
    try:
        run_id = d.trigger("ev-sleep", {"dir": str(effects), "seconds": 8})
        _evicted(d, run_id)
        wait_for(lambda: not worker_pids(d.home), 30, interval=0.1, what="no task process left")
        done = d.wait_status(run_id, timeout=60)
        assert done["status"] == "COMPLETED" and done["attemptCount"] == 1, done
        output = done["output"]
        assert output["woke"] >= output["t0"] + 8 - 0.05, output  # not early
        assert output["woke"] < output["t0"] + 15, output  # the same due time, not a new wait
        assert output["attempt"] == 1 and count(effects, "effect") == 1, output
        assert _events(d, run_id, "run.replayed")
    finally:
        d.close()
