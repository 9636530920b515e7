"""A `trigger_and_wait` whose child ends before the parent's wait reaches the daemon (the wait
answers `continue`, no `run.waiting`) still shows its wait in the parent's trace, from the wait's
durable record (docs/waits.md, "A wait in the trace"); so the dashboard draws it as it draws a
wait that blocked. Against a real daemon: a child that returns at once, and — for certain — a
child that had ended before its parent waited (the same idempotency key, triggered again)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tui.trace import build_trace

from .conftest import DaemonProcess, write_project

TASKS = '''
from trigger_local import runs, task

@task(id="quick")
async def quick(payload, ctx):
    return {"n": payload["n"]}

@task(id="fast-parent")
async def fast_parent(payload, ctx):
    result = await quick.trigger_and_wait({"n": 1})
    return {"child_id": result.id, "output": result.unwrap()}

@task(id="late-parent")
async def late_parent(payload, ctx):
    first = await quick.trigger({"n": 2}, idempotency_key="once")
    await runs.poll(first.id, interval_s=0.05, timeout_s=120)
    # the same key: the child that ended already; the wait on it has nothing to wait for
    result = await quick.trigger_and_wait({"n": 2}, idempotency_key="once")
    return {"child_id": result.id, "first_id": first.id, "output": result.unwrap()}
'''


@pytest.fixture
def d(tmp_path: Path) -> Any:
    home = tmp_path / "home"
    daemon = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home)}).start()
    try:
        daemon.register(write_project(tmp_path / "project", TASKS))
        yield daemon
    finally:
        daemon.close()


def _child_wait(d: DaemonProcess, parent_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parent's output and the one wait of its trace, checked to be on its child."""
    run = d.wait_status(parent_id, timeout=120)
    assert run["status"] == "COMPLETED", run
    output = run["output"]
    trace = d.api("GET", f"/api/v1/runs/{parent_id}/trace").json()
    [wait] = trace["waits"]
    assert (wait["type"], wait["ownerRunId"], wait["status"]) == \
        ("RUN", output["child_id"], "COMPLETED"), wait
    nodes = build_trace(trace).walk()  # the dashboard's tree draws it
    assert [n.label for n in nodes if n.kind == "wait"] == \
        [f"wait for {output['child_id']} · completed"]
    return output, wait


def test_a_wait_on_a_child_that_had_ended_is_in_the_trace(d: DaemonProcess) -> None:
    parent_id = d.trigger("late-parent", {})
    output, _ = _child_wait(d, parent_id)
    assert output["child_id"] == output["first_id"] and output["output"] == {"n": 2}
    history = [e["type"] for e in d.api("GET", "/api/v1/local/events",
                                        params={"run_id": parent_id}).json()["data"]]
    assert "run.waiting" not in history  # the wait answered continue: it never blocked


def test_a_wait_on_a_child_that_returns_at_once_is_in_the_trace(d: DaemonProcess) -> None:
    for parent_id in [d.trigger("fast-parent", {}) for _ in range(3)]:
        output, _ = _child_wait(d, parent_id)
        assert output["output"] == {"n": 1}
