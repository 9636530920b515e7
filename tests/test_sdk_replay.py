"""The task side of replay (sdk/replay.py, docs/durability.md), over the worker protocol against
the stub daemon: an assignment's records answer the calls they recorded with no request, new
calls carry their seq, a reordered call fails the attempt without a retry, logs are not sent
twice, and steps retry in the process."""

from __future__ import annotations

import asyncio
import json

from test_runtime_daemon_stub import (
    DaemonStub,
    registry_cleared,  # noqa: F401 (clean_registry, autouse)
    served_stub,  # noqa: F401 (the stub fixture)
)

from trigger_local.runtime.worker import Worker
from trigger_local.sdk.logger import logger
from trigger_local.sdk.registry import task
from trigger_local.sdk.replay import Replay
from trigger_local.sdk.retry import Retry
from trigger_local.sdk.steps import step
from trigger_local.sdk.waits import wait
from trigger_local.sdk.worker_client import WorkerClient

#: a completed wait record's result: the WaitResult as JSON (its output is a packet itself)
DONE = json.dumps({"ok": True, "status": "COMPLETED", "output": '{"n":7}',
                   "outputType": "application/json"})


async def run_with(stub: DaemonStub, task_id: str, records: list[dict]) -> dict:
    worker = Worker(WorkerClient(stub.url, orphan_timeout=2), "worker_1", "wtok", wait_s=1)
    stub.assign("run_1", task_id, None, records=records)
    await worker.tick()
    await worker.client.aclose()
    (_, body), = stub.completions
    return body


async def test_recorded_calls_are_answered_from_their_records(stub: DaemonStub) -> None:
    called: list[str] = []

    @task(id="flow")
    async def flow(payload, ctx):
        logger.info("replayed: not sent again")
        charged = await step.run("charge", lambda: called.append("charge") or {"id": "ch_new"})
        await wait.for_(seconds=60)
        token = await wait.create_token(timeout="1h")
        approval = await wait.for_token(token)
        logger.info("new: sent")
        shipped = await step.run("ship", lambda: called.append("ship") or "shipped")
        return {"charged": charged, "approval": approval.output, "shipped": shipped}

    body = await run_with(stub, "flow", [
        {"seq": 1, "kind": "step", "name": "charge", "status": "completed",
         "result": '{"id":"ch_1"}', "resultType": "application/json"},
        {"seq": 2, "kind": "wait.for", "status": "completed", "result": '{"ok":true}'},
        {"seq": 3, "kind": "token.create", "status": "completed", "waitpointId": "waitpoint_tok1"},
        {"seq": 4, "kind": "wait.token", "status": "completed", "result": DONE}])
    assert body["ok"], body
    assert body["output"] == '{"charged":{"id":"ch_1"},"approval":{"n":7},"shipped":"shipped"}'
    assert called == ["ship"]  # the recorded step's fn was not called
    assert stub.of_kind("wait") == []  # completed waits need no request
    # the token is asked again (the daemon makes its url) with its record: the same token
    assert stub.of_kind("tokens") == [{"timeout": "1h", "record": {"seq": 3,
                                                                  "kind": "token.create"}}]
    [saved] = stub.of_kind("steps")
    assert saved == {"record": {"seq": 5, "kind": "step", "name": "ship"},
                     "status": "completed", "result": '"shipped"',
                     "resultType": "application/json"}
    messages = [e["message"] for e in stub.logs]
    assert "replayed: not sent again" not in messages and "new: sent" in messages
    spans = [e["message"] for e in stub.logs if e["attributes"].get("fromRecord")]
    assert spans == ["step.run('charge') (from record)", "wait.for_ (from record)",
                     "wait.create_token (from record)", "wait.for_token (from record)"]


async def test_a_pending_wait_is_sent_with_its_record(stub: DaemonStub) -> None:
    @task(id="sleeper")
    async def sleeper(payload, ctx):
        await wait.for_(seconds=60)
        return "woke"

    body = await run_with(stub, "sleeper", [
        {"seq": 1, "kind": "wait.for", "status": "pending", "waitpointId": "waitpoint_d"}])
    assert body["output"] == '"woke"'
    [sent] = stub.of_kind("wait")
    assert sent["record"] == {"seq": 1, "kind": "wait.for"}


async def test_a_reordered_call_fails_the_attempt_and_is_not_retried(stub: DaemonStub) -> None:
    @task(id="changed")
    async def changed(payload, ctx):
        await step.run("x", lambda: 1)
        await wait.for_token("waitpoint_tok1")

    body = await run_with(stub, "changed", [
        {"seq": 1, "kind": "wait.token", "status": "pending", "waitpointId": "waitpoint_tok1"}])
    assert body["ok"] is False and body["retry"] is False
    assert body["error"]["name"] == "NonDeterministicReplayError"
    assert body["error"]["message"] == ("non-deterministic replay at step 1: expected "
                                        "wait.for_token, got step.run('x')")
    assert stub.of_kind("steps") == []


async def test_last_checkpoint_and_skipping_a_checkpoint(stub: DaemonStub) -> None:
    @task(id="resumable")
    async def resumable(payload, ctx):
        seen = ctx.last_checkpoint
        if seen is None:
            await ctx.checkpoint("downloaded", {"size": 3})
        value = await step.run("process", lambda: "processed")
        await ctx.checkpoint("processed", {"value": value})
        return {"seen": seen, "last": ctx.last_checkpoint}

    body = await run_with(stub, "resumable", [
        {"seq": 1, "kind": "checkpoint", "name": "downloaded", "status": "completed",
         "result": '{"size":3}', "resultType": "application/json"}])
    assert body["output"] == ('{"seen":{"name":"downloaded","data":{"size":3}},'
                              '"last":{"name":"processed","data":{"value":"processed"}}}')
    # the skipped checkpoint is no mismatch: the step takes seq 2
    assert [s["record"] for s in stub.of_kind("steps")] == [
        {"seq": 2, "kind": "step", "name": "process"},
        {"seq": 3, "kind": "checkpoint", "name": "processed"}]


async def test_a_failed_step_retries_in_process_then_raises_and_a_failed_record_reruns(
        stub: DaemonStub) -> None:
    tries: list[int] = []

    def flaky() -> str:
        tries.append(1)
        raise RuntimeError("nope")

    @task(id="stepper")
    async def stepper(payload, ctx):
        return await step.run("flaky", flaky, retry=Retry(max_attempts=3, min_timeout_s=0,
                                                          max_timeout_s=0))

    body = await run_with(stub, "stepper", [
        {"seq": 1, "kind": "step", "name": "flaky", "status": "failed"}])
    assert len(tries) == 3  # a failed record is not memoized: the step ran again, 3 tries
    assert body["ok"] is False and body["retry"] is True and "nope" in body["error"]["message"]
    assert [s["status"] for s in stub.of_kind("steps")] == ["failed"]


async def test_sync_tasks_use_run_sync_and_the_decorator(stub: DaemonStub) -> None:
    @step("double")
    def double(n: int) -> int:
        return n * 2

    @task(id="sync-steps")
    def sync_steps(payload, ctx):
        return [double(2), step.run_sync("triple", lambda n: n * 3, 2)]

    body = await run_with(stub, "sync-steps", [
        {"seq": 1, "kind": "step", "name": "double", "status": "completed", "result": "40"}])
    assert body["output"] == "[40,6]"
    assert [s["record"]["name"] for s in stub.of_kind("steps")] == ["triple"]


def test_a_trailing_checkpoint_does_not_hold_back_new_logs() -> None:
    """Code that branches on `last_checkpoint` skips it: what follows is new."""
    replay = Replay([{"seq": 1, "kind": "step", "name": "a", "status": "completed"},
                     {"seq": 2, "kind": "checkpoint", "name": "c", "status": "completed"}])
    replay.take("step", "a")
    assert not replay.replaying


def test_the_cursor_is_per_run_and_thread_safe() -> None:
    a, b = Replay([{"seq": 1, "kind": "step", "name": "a", "status": "completed"}]), Replay()
    assert a.replaying and not b.replaying
    call, record = a.take("step", "a")
    assert (call.seq, record is not None, a.replaying) == (1, True, False)
    assert b.take("step", "a")[0].seq == 1  # another run's cursor is its own
    import threading
    c = Replay()
    threads = [threading.Thread(target=lambda: [c.take("step", "s") for _ in range(200)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert c.seq == 800


async def test_gathered_steps_take_seqs_in_start_order(stub: DaemonStub) -> None:
    @task(id="gather")
    async def gather(payload, ctx):
        async def slow(n: int) -> int:
            await asyncio.sleep(0.01 * (3 - n))
            return n
        return await asyncio.gather(*(step.run(f"s{n}", slow, n) for n in range(3)))

    body = await run_with(stub, "gather", [])
    assert body["output"] == "[0,1,2]"
    assert sorted((s["record"]["seq"], s["record"]["name"]) for s in stub.of_kind("steps")) == [
        (1, "s0"), (2, "s1"), (3, "s2")]
