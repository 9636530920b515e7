"""Task definitions, the registry, Retry, idempotency keys, trigger options, and triggering
from app code (through a stand-in for the management client)."""

from __future__ import annotations

import hashlib
import sys
import types
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel
from test_runtime_daemon_stub import registry_cleared  # noqa: F401 (clean_registry, autouse)

from trigger_local.errors import DuplicateTaskIdError, ValidationError
from trigger_local.sdk import registry
from trigger_local.sdk.options import (
    create_idempotency_key,
    idempotency_keys,
    queue,
    trigger_options,
)
from trigger_local.sdk.registry import schema_task, task
from trigger_local.sdk.retry import Retry
from trigger_local.sdk.tasks import tasks


def test_task_decorator_registers_sync_and_async_functions() -> None:
    @task(id="a")
    async def a(payload, ctx):
        return payload

    @task(id="b")
    def b(payload):
        return payload

    assert registry.get_task("a") is a and registry.get_task("b") is b
    assert (a.id, a.is_async, a.takes_ctx) == ("a", True, True)
    assert (b.is_async, b.takes_ctx) == (False, False)
    assert b(3) == 3  # calling the task calls the function


def test_same_id_from_two_functions_is_a_clear_error() -> None:
    @task(id="dup")
    def first(payload):
        pass

    with pytest.raises(DuplicateTaskIdError, match="'dup' is defined twice.*first.*second"):
        @task(id="dup")
        def second(payload):
            pass


def test_redefining_the_same_function_replaces_it() -> None:
    def define():
        @task(id="again")
        def again(payload):
            pass
        return again

    define()
    latest = define()
    assert registry.get_task("again") is latest


def test_manifest_of_a_task_on_a_shared_queue() -> None:
    videos = queue("videos", concurrency_limit=2)

    @task(id="convert", queue=videos, retry=Retry(max_attempts=5), max_duration="10m",
          machine="small-2x")
    def convert(payload, ctx):
        pass

    m = convert.manifest()
    assert m["queue"] == "videos" and m["queue_concurrency_limit"] == 2 and m["queue_is_custom"]
    assert (m["max_duration_s"] == 600 and m["machine"] == "small-2x"
            and m["retry"]["max_attempts"] == 5)
    assert m["file"].endswith("test_sdk_tasks.py") and m["export_name"] == "convert"


def test_default_queue_is_the_tasks_own() -> None:
    @task(id="solo")
    def solo(payload):
        pass

    m = solo.manifest()
    assert (m["queue"], m["queue_is_custom"], m["retry"],
            m["schema"]) == ("task/solo", False, None, None)


@pytest.mark.parametrize("name", ["", " ", "\t", "\u3000 \n"])
def test_an_empty_or_blank_queue_name_is_refused_where_it_is_defined(name: str) -> None:
    """`@task(queue=" ")` made a queue named " " (and `queue=""` one named ""); `queue(" ")`
    too: the daemon refuses such a name in a trigger, so a definition refuses it at once."""
    with pytest.raises(ValidationError, match="not empty or only whitespace"):
        queue(name)
    with pytest.raises(ValidationError, match="Task 'blank-queue': A queue needs a name"):
        task(id="blank-queue", queue=name)(lambda payload: None)
    assert registry.get_task("blank-queue") is None  # nothing half-defined is registered


@pytest.mark.parametrize(("task_id", "error"), [
    ("evil\x1b[2J", "Task 'evil\\x1b[2J': its id must not hold control characters (it has "
                    "'\\x1b' at 4)"),
    ("tab\there", "its id must not hold control characters (it has '\\t' at 3)"),
    ("x" * 257, "its id must be 1 to 256 characters, not 257"),
])
def test_a_task_id_with_control_characters_or_too_long_is_refused_where_it_is_defined(
        task_id: str, error: str) -> None:
    """`dev`, `runs ls`, `queues ls` and `status` print task ids: an escape sequence in one
    acted on the terminal. The definition refuses it, naming it escaped."""
    with pytest.raises(ValidationError) as caught:
        task(id=task_id)(lambda payload: None)
    assert error in caught.value.message
    assert registry.get_task(task_id) is None


@pytest.mark.parametrize("name", ["q\x00", "q\x1b[31m", "q" * 257])
def test_a_queue_name_with_control_characters_or_too_long_is_refused(name: str) -> None:
    """The rules of a trigger's `options.queue.name`, which the daemon would refuse at the
    first trigger that named the queue."""
    with pytest.raises(ValidationError, match="The name of queue"):
        queue(name)
    with pytest.raises(ValidationError, match="Task 'odd-queue': The name of queue"):
        task(id="odd-queue", queue=name)(lambda payload: None)


class Item(BaseModel):
    name: str
    qty: int = 1


def test_schema_task_carries_the_json_schema_and_parses_payloads() -> None:
    @schema_task(id="order", schema=Item)
    async def order(payload: Item, ctx):
        pass

    assert order.manifest()["schema"]["required"] == ["name"]
    assert order.parse_payload({"name": "x"}) == Item(name="x", qty=1)
    with pytest.raises(ValidationError, match="pydantic model"):
        schema_task(id="bad", schema=dict)


def test_retry_to_dict_has_exactly_the_documented_keys() -> None:
    assert Retry().to_dict() == {"max_attempts": 3, "factor": 2, "min_timeout_s": 1,
                                 "max_timeout_s": 60, "randomize": True}
    assert Retry.coerce({"max_attempts": 1}) == Retry(max_attempts=1)
    with pytest.raises(ValidationError):
        Retry(max_attempts=0)


def test_idempotency_key_hash_matches_the_typescript_sdk_outside_a_task() -> None:
    hashed = create_idempotency_key("my-key")
    assert hashed.startswith("5e78863e") and hashed.endswith("c0f732")
    assert hashed == hashlib.sha256(b"my-key").hexdigest()
    assert (hashed.key, hashed.scope) == ("my-key", "run")
    assert create_idempotency_key(["a", "b"]) == hashlib.sha256(b"a-b").hexdigest()
    already = "f" * 64
    assert create_idempotency_key(already) == already
    assert idempotency_keys.create("my-key", scope="global") == hashed
    with pytest.raises(ValidationError):
        create_idempotency_key("k", scope="nope")


def test_trigger_options_are_sent_in_camel_case() -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    opts = trigger_options({"queue": queue("q"), "concurrency_key": "c", "delay": 30, "ttl": "1h",
                            "idempotency_key": "my-key", "idempotency_key_ttl": "1d", "tags": "t",
                            "max_attempts": 2, "max_duration": "1m", "priority": 10,
                            "machine": "micro", "metadata": {"a": 1}})
    assert opts == {"queue": {"name": "q"}, "concurrencyKey": "c", "delay": "30s", "ttl": "1h",
                    "idempotencyKey": hashlib.sha256(b"my-key").hexdigest(),
                    "idempotencyKeyOptions": {"key": "my-key", "scope": "run"},
                    "idempotencyKeyTTL": "1d", "tags": ["t"], "maxAttempts": 2, "maxDuration": 60.0,
                    "priority": 10, "machine": "micro", "metadata": {"a": 1}}
    assert trigger_options({"ttl": None, "tags": None}) == {}
    assert trigger_options({"delay": when}) == {"delay": "2030-01-01T00:00:00+00:00"}
    with pytest.raises(TypeError, match="Unknown trigger option"):
        trigger_options({"concurrencyKey": "x"})


class StandInClient:
    """Plays `trigger_local.sdk.client`'s clients (async and sync alike)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def trigger(self, task_id: str, payload: str | None, payload_type: str, options: dict) -> Any:
        self.calls.append(("trigger", (task_id, payload, payload_type, options)))
        return self._maybe_async({"id": "run_1", "isCached": True})

    def batch_trigger(self, items: list[dict]) -> Any:
        self.calls.append(("batch", items))
        return self._maybe_async({"batchId": "batch_1", "runs": ["run_a", "run_b"]})

    def _maybe_async(self, value: Any) -> Any:
        return value


class AsyncStandIn(StandInClient):
    def _maybe_async(self, value: Any) -> Any:
        async def answer() -> Any:
            return value
        return answer()


@pytest.fixture
def management(monkeypatch: pytest.MonkeyPatch) -> tuple[StandInClient, StandInClient]:
    sync, aio = StandInClient(), AsyncStandIn()
    module = types.ModuleType("trigger_local.sdk.client")
    module.get_client = lambda: aio  # type: ignore[attr-defined]
    module.get_sync_client = lambda: sync  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "trigger_local.sdk.client", module)
    return sync, aio


async def test_trigger_outside_a_task_goes_through_the_management_client(management) -> None:
    sync, aio = management

    @task(id="hello")
    async def hello(payload, ctx):
        pass

    handle = await hello.trigger({"n": 1}, tags=["x"])
    assert (handle.id, handle.is_cached) == ("run_1", True)
    assert aio.calls == [("trigger", ("hello", '{"n":1}', "application/json", {"tags": ["x"]}))]
    assert hello.trigger_sync("text").id == "run_1"
    assert sync.calls[0][1][1] == '"text"'
    batch = await tasks.batch_trigger("hello", [1, {"payload": 2, "options": {"priority": 5}}])
    assert (batch.batch_id, batch.runs) == ("batch_1", ["run_a", "run_b"])
    assert aio.calls[1][1][1] == {"task": "hello", "payload": "2",
                                  "payloadType": "application/json", "options": {"priority": 5}}
    assert hello.batch_trigger_sync([{"payload": 1}]).runs == ["run_a", "run_b"]


async def test_waiting_triggers_outside_a_task_are_refused(management) -> None:
    @task(id="hello")
    async def hello(payload, ctx):
        pass

    with pytest.raises(RuntimeError, match="can only be used from inside a task run"):
        await hello.trigger_and_wait(1)
    with pytest.raises(RuntimeError, match="can only be used from inside a task run"):
        hello.batch_trigger_and_wait_sync([1])
