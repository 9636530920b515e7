"""Waits, child runs and tokens inside a task run, over the worker protocol (real HTTP server)."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from test_runtime_daemon_stub import (
    DaemonStub,
    registry_cleared,  # noqa: F401 (clean_registry, autouse)
    served_stub,  # noqa: F401 (the stub fixture)
)

from trigger_local.errors import TaskRunFailedError, WaitTimeoutError
from trigger_local.runtime.worker import Worker
from trigger_local.sdk.logger import logger
from trigger_local.sdk.metadata import metadata
from trigger_local.sdk.registry import task
from trigger_local.sdk.tasks import tasks
from trigger_local.sdk.waits import wait
from trigger_local.sdk.worker_client import WorkerClient

OK_NONE = {"ok": True, "status": "COMPLETED", "output": None, "outputType": "application/json"}


async def run_one(stub: DaemonStub, task_id: str, payload: str | None = None) -> Worker:
    worker = Worker(WorkerClient(stub.url, orphan_timeout=2), "worker_1", "wtok", wait_s=1)
    stub.assign("run_1", task_id, payload)
    await worker.tick()
    await worker.client.aclose()
    return worker


def output(stub: DaemonStub) -> str | None:
    (_, body), = stub.completions
    assert body["ok"], body
    return body["output"]


async def test_wait_for_sends_a_duration_wait_and_flushes_logs_first(stub: DaemonStub) -> None:
    @task(id="sleepy")
    async def sleepy(payload, ctx):
        logger.info("before")
        metadata.set("step", 1)
        await wait.for_(minutes=1, seconds=30, idempotency_key=["a", "b"])
        return "done"

    start = datetime.now(UTC)
    await run_one(stub, "sleepy")
    kinds = [k for k, _, _ in stub.calls]
    assert (kinds.index("logs") < kinds.index("wait")
            and kinds.index("metadata") < kinds.index("wait"))
    body = stub.of_kind("wait")[0]
    assert body["kind"] == "duration" and body["idempotencyKey"] == "a-b"
    until = datetime.fromisoformat(body["until"])
    assert timedelta(seconds=89) < until - start < timedelta(seconds=92)
    assert output(stub) == '"done"'


async def test_token_wait_is_held_then_polled_until_completed(stub: DaemonStub) -> None:
    stub.wait_plans["waitpoint_tok1"] = {"action": "hold"}

    @task(id="approve")
    async def approve(payload, ctx):
        token = await wait.create_token(timeout=600, tags="approval")
        result = await wait.for_token(token)
        return {"token": token.id, "approved": result.unwrap()}

    worker_run = asyncio.create_task(run_one(stub, "approve"))
    await stub.until(lambda: stub.of_kind("poll"))
    await stub.complete_waitpoint("waitpoint_tok1", {"ok": True, "status": "COMPLETED",
                                                     "output": '{"by":"ada"}',
                                                     "outputType": "application/json"})
    await worker_run
    # the token is a durable call: its place in the run travels with it (docs/durability.md)
    assert stub.of_kind("tokens") == [{"timeout": "600s", "tags": ["approval"],
                                       "record": {"seq": 1, "kind": "token.create"}}]
    assert output(stub) == '{"token":"waitpoint_tok1","approved":{"by":"ada"}}'


async def test_timed_out_token_unwrap_raises(stub: DaemonStub) -> None:
    stub.wait_plans["wp_t"] = {"action": "continue", "result": {
        "ok": False, "status": "TIMED_OUT", "output": None, "outputType": "application/json",
        "error": {"name": "WaitpointTimeoutError", "message": "Waitpoint wp_t timed out"}}}

    @task(id="late")
    async def late(payload, ctx):
        result = await wait.for_token("wp_t")
        assert not result.ok and result.status == "TIMED_OUT"
        with pytest.raises(WaitTimeoutError, match="timed out"):
            result.unwrap()
        return "checked"

    await run_one(stub, "late")
    assert output(stub) == '"checked"'


async def test_final_result_abandons_the_attempt_without_completing(stub: DaemonStub) -> None:
    stub.wait_plans["wp_c"] = {"action": "hold"}
    reached = []

    @task(id="canceled")
    async def canceled(payload, ctx):
        try:
            await wait.for_token("wp_c")
        except Exception:  # user code must not be able to swallow the cancel
            reached.append("swallowed")
        reached.append("after")

    worker_run = asyncio.create_task(run_one(stub, "canceled"))
    await stub.until(lambda: stub.of_kind("poll"))
    await stub.complete_waitpoint("wp_c", {"ok": False, "status": "CANCELED", "final": True,
                                           "error": {"message": "Run is CANCELED"}})
    await worker_run
    assert stub.completions == [] and reached == []


async def test_checkpoint_wait_polls_with_fresh_connections(stub: DaemonStub) -> None:
    stub.wait_plans["wp_k"] = {"action": "checkpoint"}
    stub.done["wp_k"] = {"ok": True, "status": "COMPLETED", "output": "7",
                         "outputType": "application/json"}

    @task(id="frozen")
    async def frozen(payload, ctx):
        return (await wait.for_token("wp_k")).output

    await run_one(stub, "frozen")
    assert output(stub) == "7"


async def test_trigger_and_wait_decodes_the_child_output_and_unwrap_raises_on_failure(
        stub: DaemonStub) -> None:
    @task(id="parent")
    async def parent(payload, ctx):
        good = await tasks.trigger_and_wait("child", {"n": 1}, tags=["x"], max_attempts=2)
        bad = await tasks.trigger_and_wait("child", {"n": 2})
        with pytest.raises(TaskRunFailedError, match="exploded"):
            bad.unwrap()
        return {"good": good.unwrap(), "bad_error": bad.error["message"], "id": good.id}

    stub.wait_plans["wp_child0"] = {"action": "continue", "result": {
        "ok": True, "status": "COMPLETED", "output": '{"json":{"url":"u"}}',
        "outputType": "application/super+json"}}
    stub.wait_plans["wp_child2"] = {"action": "continue", "result": {
        "ok": False, "status": "COMPLETED", "output": None, "outputType": "application/json",
        "error": {"name": "Error", "message": "exploded"}}}
    await run_one(stub, "parent")
    first = stub.of_kind("trigger")[0]
    assert first == {"task": "child", "payload": '{"n":1}', "payloadType": "application/json",
                     # the child runs on its parent's version, as Trigger.dev's SDK sends it
                     "options": {"tags": ["x"], "maxAttempts": 2, "lockToVersion": "version_1"},
                     "wait": True,
                     "record": {"seq": 1, "kind": "trigger_and_wait", "name": "child"}}
    assert output(stub) == '{"good":{"url":"u"},"bad_error":"exploded","id":"run_child0"}'


async def test_batch_trigger_and_wait_returns_results_in_order(stub: DaemonStub) -> None:
    stub.wait_plans["wp_batch_1"] = {"action": "continue", "result": {
        "ok": True, "status": "COMPLETED", "outputType": "application/json",
        "output": '[{"id":"run_b0","ok":true,"output":"1","outputType":"application/json",'
                  '"error":null},'
                  '{"id":"run_b1","ok":false,"output":null,"outputType":"application/json",'
                  '"error":{"message":"no"}}]'}}

    @task(id="fan")
    async def fan(payload, ctx):
        handle = await tasks.batch_trigger("child", [1, {"payload": 2, "options": {"delay": 5}}])
        results = await tasks.batch_trigger_and_wait("child", [1, 2])
        return [handle.batch_id, handle.runs, [(r.id, r.ok, r.output) for r in results]]

    await run_one(stub, "fan")
    first_batch = stub.of_kind("batch")[0]
    assert first_batch["wait"] is False and first_batch["items"][1]["options"] == {"delay": "5s"}
    assert output(stub) == ('["batch_1",["run_b0","run_b1"],'
                            '[["run_b0",true,1],["run_b1",false,null]]]')


async def test_sync_task_uses_blocking_forms_from_its_thread(stub: DaemonStub) -> None:
    stub.wait_plans["wp_child2"] = {"action": "continue", "result": {
        "ok": True, "status": "COMPLETED", "output": "5", "outputType": "application/json"}}

    @task(id="blocking")
    def blocking(payload, ctx):
        wait.until_sync(datetime.now(UTC) + timedelta(seconds=1))
        handle = tasks.trigger_sync("child", 1, idempotency_key="k")
        child = tasks.trigger_and_wait_sync("child", 2)
        return [handle.id, child.unwrap()]

    await run_one(stub, "blocking")
    assert output(stub) == '["run_child1",5]'
    options = stub.of_kind("trigger")[0]["options"]
    assert options["idempotencyKeyOptions"] == {"key": "k", "scope": "run"}
    # scoped to the parent
    assert options["idempotencyKey"] == hashlib.sha256(b"k-run_1").hexdigest()


async def test_blocking_form_in_an_async_task_is_a_clear_error(stub: DaemonStub) -> None:
    @task(id="misuse")
    async def misuse(payload, ctx):
        wait.for_sync(seconds=1)

    await run_one(stub, "misuse")
    (_, body), = stub.completions
    assert body["ok"] is False and "use the `await` form" in body["error"]["message"]
