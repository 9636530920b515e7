"""The work loop against a real HTTP server playing the daemon: completions, failures,
dropped attempts, retirement, and the real `python -m trigger_local.runtime work` process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from pathlib import Path

from pydantic import BaseModel
from test_runtime_daemon_stub import (
    DaemonStub,
    registry_cleared,  # noqa: F401 (clean_registry, autouse)
    served_stub,  # noqa: F401 (the stub fixture)
)

from trigger_local.errors import AbortTaskRunError
from trigger_local.runtime.worker import RAN, Worker
from trigger_local.sdk.registry import schema_task, task
from trigger_local.sdk.worker_client import WorkerClient


def make_worker(stub: DaemonStub) -> Worker:
    return Worker(WorkerClient(stub.url, orphan_timeout=2), "worker_1", "wtok", wait_s=1)


async def test_async_and_sync_tasks_complete_with_their_output(stub: DaemonStub) -> None:
    seen = {}

    @task(id="greet")
    async def greet(payload, ctx):
        seen["ctx"] = ctx
        return {"hello": payload["name"]}

    @task(id="double")
    def double(payload):
        return payload * 2

    stub.assign("run_1", "greet", '{"name":"Ada"}')
    stub.assign("run_2", "double", "21")
    worker = make_worker(stub)
    assert await worker.tick() == RAN
    assert await worker.tick() == RAN
    assert stub.completions == [
        ("run_1", {"ok": True, "output": '{"hello":"Ada"}', "outputType": "application/json"}),
        ("run_2", {"ok": True, "output": "42", "outputType": "application/json"}),
    ]
    ctx = seen["ctx"]
    assert (ctx.run.id, ctx.run.tags, ctx.task.id,
            ctx.attempt.number) == ("run_1", ("t1",), "greet", 1)
    assert (ctx.queue.name, ctx.machine, ctx.version) == ("task/greet", "small-1x", "version_1")
    await worker.client.aclose()


async def test_exceptions_fail_the_attempt_and_abort_is_not_retried(stub: DaemonStub) -> None:
    @task(id="boom")
    async def boom(payload, ctx):
        raise ValueError("bad input")

    @task(id="abort")
    def abort(payload, ctx):
        raise AbortTaskRunError("give up")

    stub.assign("run_1", "boom")
    stub.assign("run_2", "abort")
    worker = make_worker(stub)
    await worker.tick()
    await worker.tick()
    (_, first), (_, second) = stub.completions
    assert first["ok"] is False and first["retry"] is True
    assert first["error"]["name"] == "ValueError" and first["error"]["message"] == "bad input"
    assert "raise ValueError" in first["error"]["stack"]
    assert second["retry"] is False and second["error"]["name"] == "AbortTaskRunError"
    await worker.client.aclose()


class Resize(BaseModel):
    width: int
    height: int = 10


async def test_schema_task_validates_payload_into_the_model(stub: DaemonStub) -> None:
    @schema_task(id="resize", schema=Resize)
    async def resize(payload: Resize, ctx):
        return payload.width * payload.height

    stub.assign("run_ok", "resize", '{"width": 3}')
    stub.assign("run_bad", "resize", '{"width": "wide"}')
    worker = make_worker(stub)
    await worker.tick()
    await worker.tick()
    ok, bad = (body for _, body in stub.completions)
    assert ok["output"] == "30"
    assert bad["ok"] is False and bad["retry"] is False
    assert "width" in bad["error"]["message"] and bad["error"]["name"] == "ValidationError"
    await worker.client.aclose()


async def test_unknown_task_fails_without_retry(stub: DaemonStub) -> None:
    stub.assign("run_1", "nope")
    worker = make_worker(stub)
    await worker.tick()
    body = stub.completions[0][1]
    assert body["error"]["name"] == "TaskNotFoundError" and body["retry"] is False
    await worker.client.aclose()


async def test_conflict_on_complete_drops_the_run_and_the_loop_goes_on(stub: DaemonStub) -> None:
    @task(id="noop")
    async def noop(payload, ctx):
        return None

    stub.conflict_runs.add("run_gone")
    stub.assign("run_gone", "noop")
    stub.assign("run_next", "noop")
    worker = make_worker(stub)
    await worker.tick()
    await worker.tick()
    assert [rid for rid, _ in stub.completions] == ["run_next"]
    assert stub.completions[0][1] == {"ok": True, "output": None, "outputType": "application/json"}
    await worker.client.aclose()


async def test_run_returns_zero_when_retired(stub: DaemonStub) -> None:
    @task(id="noop")
    async def noop(payload, ctx):
        return 1

    stub.assign("run_1", "noop")
    worker = make_worker(stub)
    assert await worker.tick() == RAN
    await stub.retire()
    assert await worker.run() == 0
    assert worker.runs_done == 1


async def test_unreachable_daemon_exits_after_the_orphan_timeout() -> None:
    worker = Worker(WorkerClient("http://127.0.0.1:9", orphan_timeout=0.3), "w", "t", wait_s=1)
    assert await worker.run() == 3


async def test_print_output_is_captured_as_info_logs(stub: DaemonStub) -> None:
    from trigger_local.runtime import stdio

    @task(id="talk")
    def talk(payload, ctx):
        print("line one")
        print("partial", end="")

    real = sys.stdout
    stdio.install()
    try:
        stub.assign("run_1", "talk")
        worker = make_worker(stub)
        assert await worker.tick() == RAN
    finally:
        sys.stdout, stdio._tee = real, None
    assert [e["message"] for e in stub.logs] == ["line one", "partial"]
    assert all(e["level"] == "info" for e in stub.logs)
    await worker.client.aclose()


async def test_real_work_process_runs_a_task_and_exits_when_retired(stub: DaemonStub,
                                                                    tmp_path: Path) -> None:
    (tmp_path / "trigger").mkdir()
    (tmp_path / "trigger" / "hello.py").write_text(textwrap.dedent("""
        from trigger_local.sdk.registry import task
        from trigger_local.sdk.logger import logger

        @task(id="hello")
        async def hello(payload, ctx):
            logger.info("greeting", name=payload["name"])
            return f"hello {payload['name']}"
    """))
    env = {**os.environ, "TRIGGER_LOCAL_DAEMON_URL": stub.url,
           "TRIGGER_LOCAL_WORKER_ID": "worker_1",
           "TRIGGER_LOCAL_WORKER_TOKEN": "wtok", "TRIGGER_LOCAL_PROJECT_DIR": str(tmp_path),
           "TRIGGER_LOCAL_TASK_DIRS": json.dumps(["trigger"])}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "trigger_local.runtime",
                                                "work", cwd=tmp_path, env=env,
                                                stderr=asyncio.subprocess.PIPE)
    stub.assign("run_1", "hello", '{"name":"Ada"}')
    await stub.until(lambda: len(stub.completions) == 1, deadline_s=20)
    await stub.retire()
    _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, stderr.decode()
    assert stub.completions[0][1]["output"] == '"hello Ada"'
    assert stub.logs[0]["message"] == "greeting" and stub.logs[0]["attributes"] == {"name": "Ada"}
