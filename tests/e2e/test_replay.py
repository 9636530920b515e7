"""Durable without CRIU (issue #12, docs/durability.md): a run whose process is gone resumes by
replaying its records. Real daemon, real task processes, checkpoints off; the reboot simulation
kills the daemon and every task process with -9 and starts the daemon again."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import DaemonProcess, wait_for, write_project
from .replay_support import (
    REORDERED,
    complete,
    count,
    metadata_of,
    reboot,
    records,
    replay_daemon,
)
from .test_cli_messages import cli


@pytest.fixture
def d(tmp_path: Path):
    daemon = replay_daemon(tmp_path)
    yield daemon
    daemon.close()


@pytest.fixture
def effects(tmp_path: Path) -> Path:
    path = tmp_path / "effects"
    path.mkdir()
    return path


def _resumes(d: DaemonProcess, run_id: str) -> list[dict]:
    r = d.api("GET", f"/api/v1/runs/{run_id}/trace")
    assert r.status_code == 200, r.text
    return list(r.json()["resumes"])


def test_reboot_then_the_original_token_completes_the_run_and_the_step_ran_once(
        d: DaemonProcess, effects: Path) -> None:
    run_id = d.trigger("rp-token", {"dir": str(effects)})
    token = metadata_of(d, run_id, "token")
    d.wait_status(run_id, "WAITING")
    reboot(d)
    # the new attempt replays: the step from its record, the same token, blocked on it again
    wait_for(lambda: len(d.run(run_id)["attempts"]) == 2 and d.run(run_id)["status"] == "WAITING",
             30, what="the replayed attempt to wait on the token again")
    complete(d, token, {"approved": True})
    run = d.wait_status(run_id)
    assert run["status"] == "COMPLETED", run
    # an interrupted attempt is not numbered: the replaying try is attempt 1 again
    assert run["output"] == {"effect": 1, "data": {"approved": True}, "attempt": 1}
    assert count(effects, "effect") == 1
    # an interrupted attempt is not counted: rp-token allows one attempt and still completed
    statuses = [a["rawStatus"] for a in run["attempts"]]
    assert statuses == ["INTERRUPTED", "COMPLETED"], statuses
    kinds = [(r["seq"], r["kind"], r["status"]) for r in records(d, run_id)]
    assert kinds == [(1, "step", "completed"), (2, "token.create", "completed"),
                     (3, "wait.token", "completed")]
    assert _resumes(d, run_id) == [
        {"how": "replayed", "at": _resumes(d, run_id)[0]["at"], "attempt": 2, "records": 3}]
    spans = d.api("GET", f"/api/v1/runs/{run_id}/trace").json()["spans"]
    from_record = [s["message"] for s in spans if s["attributes"].get("fromRecord")]
    assert "step.run('side-effect') (from record)" in from_record
    assert "wait.create_token (from record)" in from_record
    shown = cli(d, "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "Resumed" in shown.stdout
    assert "attempt 2: replayed 3 records" in shown.stdout, shown.stdout


def test_a_duration_wait_keeps_its_due_time_across_a_reboot(d: DaemonProcess,
                                                           effects: Path) -> None:
    run_id = d.trigger("rp-sleep", {"dir": str(effects), "seconds": 6})
    d.wait_status(run_id, "WAITING")
    [record] = [r for r in wait_for(lambda: len(records(d, run_id)) == 2 and records(d, run_id))
                if r["kind"] == "wait.for"]
    due = d.api("GET", f"/api/v1/runs/{run_id}/trace").json()["waits"][0]["completeAfter"]
    reboot(d)
    run = d.wait_status(run_id, timeout=30)
    assert run["status"] == "COMPLETED", run
    trace = d.api("GET", f"/api/v1/runs/{run_id}/trace").json()
    # the same waitpoint, so the same due time: not 6 s from the replay
    assert [w["id"] for w in trace["waits"]] == [record["waitpointId"]]
    assert trace["waits"][0]["completeAfter"] == due
    assert count(effects, "effect") == 1


def test_trigger_and_wait_gets_the_same_child_after_a_reboot(d: DaemonProcess,
                                                             effects: Path) -> None:
    parent = d.trigger("rp-parent", {"dir": str(effects)})
    d.wait_status(parent, "WAITING")
    [child] = wait_for(lambda: d.api("GET", f"/api/v1/runs/{parent}/trace").json()["children"])
    token = metadata_of(d, child["id"], "token")
    reboot(d)
    complete(d, token, "from-the-test")
    run = d.wait_status(parent, timeout=40)
    assert run["status"] == "COMPLETED", run
    assert run["output"] == {"child_id": child["id"], "child": {"child": "from-the-test"}}
    children = d.api("GET", f"/api/v1/runs/{parent}/trace").json()["children"]
    assert [c["id"] for c in children] == [child["id"]]
    assert count(effects, "effect") == 1


def test_a_batch_wait_gets_the_same_batch_after_a_reboot(d: DaemonProcess,
                                                         effects: Path) -> None:
    parent = d.trigger("rp-batch", {"dir": str(effects), "seconds": 3})
    d.wait_status(parent, "WAITING")
    wait_for(lambda: len(d.api("GET", f"/api/v1/runs/{parent}/trace").json()["children"]) == 2)
    reboot(d)
    run = d.wait_status(parent, timeout=40)
    assert run["status"] == "COMPLETED", run
    assert run["output"] == {"items": [0, 1]}
    assert len(d.api("GET", f"/api/v1/runs/{parent}/trace").json()["children"]) == 2
    assert count(effects, "effect") == 1


def test_a_fire_and_forget_trigger_is_not_made_twice(d: DaemonProcess, effects: Path) -> None:
    parent = d.trigger("rp-fire", {"dir": str(effects)})
    token = metadata_of(d, parent, "token")
    d.wait_status(parent, "WAITING")
    reboot(d)
    wait_for(lambda: len(d.run(parent)["attempts"]) == 2 and d.run(parent)["status"] == "WAITING",
             30, what="the replayed attempt to wait again")
    complete(d, token, None)
    run = d.wait_status(parent)
    assert run["status"] == "COMPLETED", run
    children = d.api("GET", f"/api/v1/runs/{parent}/trace").json()["children"]
    assert [c["id"] for c in children] == [run["output"]["child_id"]]


def test_a_retry_after_a_failure_memoizes_completed_steps_and_reruns_the_failed_one(
        d: DaemonProcess, effects: Path) -> None:
    run_id = d.trigger("rp-retry", {"dir": str(effects)})
    run = d.wait_status(run_id)
    assert run["status"] == "COMPLETED", run
    assert run["output"] == {"a": 1, "b": "b-ok", "attempt": 2}
    assert count(effects, "a") == 1  # memoized in attempt 2
    assert count(effects, "b") == 2  # failed in attempt 1, ran again in attempt 2
    statuses = [(r["seq"], r["name"], r["status"], r["attempt"]) for r in records(d, run_id)]
    assert statuses == [(1, "a", "completed", 1), (2, "b", "completed", 2)]


def test_a_step_retries_in_process_per_its_own_retry_options(d: DaemonProcess,
                                                             effects: Path) -> None:
    run_id = d.trigger("rp-step-retry", {"dir": str(effects)})
    run = d.wait_status(run_id)
    assert run["status"] == "COMPLETED", run
    assert run["output"] == "s-ok"
    assert run["attemptCount"] == 1
    assert count(effects, "s") == 3


def test_a_code_change_that_reorders_calls_fails_with_the_non_deterministic_error(
        d: DaemonProcess, effects: Path, tmp_path: Path) -> None:
    run_id = d.trigger("rp-token", {"dir": str(effects)})
    metadata_of(d, run_id, "token")
    d.wait_status(run_id, "WAITING")
    write_project(tmp_path / "project", REORDERED)  # the run's version, new code on disk
    reboot(d)
    run = d.wait_status(run_id)
    assert run["status"] == "FAILED", run
    message = run["attempts"][-1]["error"]["message"]
    assert message == ("non-deterministic replay at step 3: expected wait.for_token, got "
                       "step.run('x')")
    assert count(effects, "x") == 0


def test_ctx_checkpoint_is_what_last_checkpoint_returns_after_a_reboot(d: DaemonProcess,
                                                                       effects: Path) -> None:
    run_id = d.trigger("rp-checkpoint", {"dir": str(effects)})
    token = metadata_of(d, run_id, "token")
    d.wait_status(run_id, "WAITING")
    reboot(d)
    wait_for(lambda: len(d.run(run_id)["attempts"]) == 2 and d.run(run_id)["status"] == "WAITING",
             30, what="the replayed attempt to wait again")
    complete(d, token, None)
    run = d.wait_status(run_id)
    assert run["status"] == "COMPLETED", run
    last = {"name": "downloaded", "data": {"size": 1}}
    assert run["output"] == {"seen": last, "last": last, "downloads": 1}


def test_a_large_step_result_goes_to_the_packet_store_and_survives_a_reboot(
        d: DaemonProcess, effects: Path) -> None:
    run_id = d.trigger("rp-large", {"dir": str(effects)})
    token = metadata_of(d, run_id, "token")
    d.wait_status(run_id, "WAITING")
    assert (d.home / "packets" / "steps" / run_id / "1").stat().st_size > 300_000
    reboot(d)
    wait_for(lambda: len(d.run(run_id)["attempts"]) == 2 and d.run(run_id)["status"] == "WAITING",
             30, what="the replayed attempt to wait again")
    complete(d, token, None)
    run = d.wait_status(run_id)
    assert run["status"] == "COMPLETED", run
    assert run["output"] == {"length": 300_000, "effect": 1}


def test_the_replay_benchmark_runs_and_reports_its_figures() -> None:
    """scripts/bench_replay.py works (the figures are taken on a quiet machine, not here)."""
    import json
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "scripts" / "bench_replay.py"
    done = subprocess.run([sys.executable, str(script), "--samples", "2", "--steps", "10"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout[done.stdout.index("{"):])
    assert result["steps"] == 10 and result["replay_ms"]["p50"] > 0
