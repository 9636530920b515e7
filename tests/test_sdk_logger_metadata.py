"""logger and metadata: operations, span nesting, and how entries are batched to the daemon.

Inside a run the SDK talks through a `WorkerClient` whose transport records requests: a fake
at the I/O edge only."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from trigger_local.sdk.context import Context, RunState, enter_run, exit_run
from trigger_local.sdk.logger import logger
from trigger_local.sdk.metadata import metadata
from trigger_local.sdk.options import create_idempotency_key
from trigger_local.sdk.worker_client import WorkerClient


class RecordingTransport:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.changed = asyncio.Condition()

    async def send(self, method: str, path: str, headers: dict[str, str], body: bytes | None,
                   timeout_s: float) -> tuple[int, bytes]:
        async with self.changed:
            self.requests.append((method, path, json.loads(body) if body else None))
            self.changed.notify_all()
        return 200, body or b"{}"

    async def until(self, predicate: Callable[[], bool], deadline_s: float = 5) -> None:
        async with asyncio.timeout(deadline_s), self.changed:
            await self.changed.wait_for(predicate)

    def bodies(self, suffix: str) -> list[Any]:
        return [body for _, path, body in self.requests if path.endswith(suffix)]

    async def reset(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


@pytest.fixture
async def run():
    transport = RecordingTransport()
    state = RunState(run_id="run_1", attempt=2, token="tok",
                     client=WorkerClient("http://x", transport=transport),
                     loop=asyncio.get_running_loop(),
                     ctx=Context.from_assignment({"run_id": "run_1", "task_id": "t"}),
                     metadata={"existing": True})
    token = enter_run(state)
    yield state, transport
    exit_run(token)


def test_metadata_operations_outside_a_run_apply_to_a_local_dict() -> None:
    metadata.replace({"progress": 0})
    metadata.set("progress", 0.5).increment("count").increment("count", 2).decrement("count")
    metadata.append("items", "a").append("items", "b").append("items", "a").remove("items", "a")
    metadata.set("gone", 1).delete("gone")
    assert metadata.current() == {"progress": 0.5, "count": 2, "items": ["b"]}
    assert metadata.get("count") == 2 and metadata.get("missing", "d") == "d"
    snapshot = metadata.current()
    snapshot["items"].append("mutated")
    assert metadata.get("items") == ["b"]  # current() is a copy
    metadata.replace({})


async def test_metadata_changes_are_coalesced_into_one_put_of_the_whole_dict(run) -> None:
    state, transport = run
    metadata.set("a", 1).increment("n").increment("n")
    assert transport.requests == []  # nothing sent synchronously
    await transport.until(lambda: transport.bodies("/metadata"))
    assert transport.bodies("/metadata") == [{"metadata": {"existing": True, "a": 1, "n": 2}}]
    await state.flush()
    assert len(transport.bodies("/metadata")) == 1  # nothing dirty: nothing sent again


async def test_flush_sends_logs_and_metadata_at_once(run) -> None:
    state, transport = run
    logger.info("hello", user="ada")
    metadata.set("k", "v")
    await state.flush()
    (logs,) = transport.bodies("/logs")
    assert logs["attempt"] == 2
    (entry,) = logs["entries"]
    assert (entry["level"], entry["message"], entry["attributes"], entry["kind"]) == \
        ("info", "hello", {"user": "ada"}, "log")
    assert transport.bodies("/metadata")[0]["metadata"]["k"] == "v"
    assert transport.requests[0][1] == "/engine/v1/runs/run_1/logs"


async def test_logs_are_sent_in_a_burst_within_200_ms(run) -> None:
    state, transport = run
    for i in range(3):
        logger.debug(f"line {i}")
    assert transport.requests == []
    await transport.until(lambda: transport.bodies("/logs"))
    assert [e["message"]
            for e in transport.bodies("/logs")[0]["entries"]] == ["line 0", "line 1", "line 2"]


async def test_a_hundred_entries_are_sent_without_waiting_for_the_timer(run) -> None:
    state, transport = run
    state.logs._interval_s = 3600  # only the size rule can send them now
    for i in range(100):
        logger.info("x", i=i)
    await transport.until(lambda: sum(len(b["entries"]) for b in transport.bodies("/logs")) == 100)


async def test_spans_nest_and_logs_name_their_span(run) -> None:
    state, transport = run
    with logger.trace("outer", step=1) as outer:
        logger.warning("inside outer")
        async with logger.trace("inner") as inner:
            logger.error("inside inner")
        outer.set_attribute("done", True)
    with pytest.raises(ValueError), logger.trace("failing"):
        raise ValueError("nope")
    await state.flush()
    entries = {e["message"]: e for e in transport.bodies("/logs")[0]["entries"]}
    assert (entries["inside outer"]["parentSpanId"] == outer.id
            and entries["inside outer"]["level"] == "warn")
    assert entries["inside inner"]["parentSpanId"] == inner.id
    assert entries["inner"]["kind"] == "span" and entries["inner"]["parentSpanId"] == outer.id
    assert entries["outer"]["parentSpanId"] is None and entries["outer"]["spanId"] == outer.id
    assert entries["outer"]["attributes"] == {"step": 1, "done": True}
    outer_, inner = entries["outer"], entries["inner"]
    assert outer_["endedAt"] >= inner["endedAt"] >= inner["at"] >= outer_["at"]
    assert (entries["failing"]["level"] == "error"
            and "ValueError: nope" in entries["failing"]["attributes"]["error"])


async def test_idempotency_keys_inside_a_run_are_scoped(run) -> None:
    assert create_idempotency_key("my-key") == hashlib.sha256(b"my-key-run_1").hexdigest()
    by_attempt = hashlib.sha256(b"my-key-run_1-2").hexdigest()
    assert create_idempotency_key("my-key", scope="attempt") == by_attempt
    assert create_idempotency_key("my-key", scope="global") == hashlib.sha256(b"my-key").hexdigest()


def test_logger_outside_a_run_uses_stdlib_logging(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="trigger_local"):
        logger.info("plain", a=1)
        with logger.trace("work"):
            pass
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "plain {'a': 1}" and messages[1].startswith("span work")
