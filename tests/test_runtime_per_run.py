"""The task process's own work per run (issue #13): a run of a task without hooks builds no
hook arguments and calls nothing for its hooks, and one with hooks still gets them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from trigger_local import task
from trigger_local.runtime import lifecycle
from trigger_local.runtime.execute import execute
from trigger_local.sdk import registry
from trigger_local.sdk.context import Resumed
from trigger_local.sdk.worker_client import WorkerClient


def _assignment(task_id: str) -> dict[str, Any]:
    return {"run_id": "run_1", "attempt": 1, "run_token": "t", "task_id": task_id,
            "payload": "null", "payload_type": "application/json", "metadata": {},
            "records": [], "ctx": {"run": {"id": "run_1"}, "task": {"id": task_id}}}


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    built: list[dict[str, Any]] = []
    args = lifecycle.Lifecycle.args

    def counting(self: lifecycle.Lifecycle, **extra: Any) -> dict[str, Any]:
        built.append(extra)
        return args(self, **extra)

    monkeypatch.setattr(lifecycle.Lifecycle, "args", counting)
    registry.clear()
    yield built
    registry.clear()


async def test_a_run_without_hooks_builds_no_hook_arguments(
        counted: list[dict[str, Any]]) -> None:
    @task(id="bare")
    async def bare(payload: Any, ctx: Any) -> int:
        return 7

    # a daemon that is never called: a run that logs nothing sends nothing before completing
    client = WorkerClient("http://127.0.0.1:1")
    body = await execute(_assignment("bare"), client, resumed=Resumed())
    assert body == {"ok": True, "output": "7", "outputType": "application/json"}
    assert counted == []


async def test_a_run_with_hooks_gets_their_arguments(counted: list[dict[str, Any]]) -> None:
    seen: list[Any] = []

    @task(id="hooked", on_success=lambda output: seen.append(output))
    async def hooked(payload: Any, ctx: Any) -> int:
        return 8

    # the hook's span is a log line: its send to no daemon gives up at once (the run's result
    # does not depend on it)
    client = WorkerClient("http://127.0.0.1:1", orphan_timeout=0.0)
    body = await execute(_assignment("hooked"), client, resumed=Resumed())
    assert body is not None and body["ok"] and seen == [8]
    assert counted == [{"output": 8}]
