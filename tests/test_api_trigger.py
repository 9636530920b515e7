"""Triggering through Trigger.dev's routes: options, the retrieve shape, idempotency."""

from __future__ import annotations

import gzip
import hashlib
import json

import httpx

from tests.conftest import SECRET, InProcessServices
from trigger_local.api.auth import verify_jwt
from trigger_local.engine import AttemptOutcome, Engine
from trigger_local.store.models import Version

OPTIONAL_DATES = ("startedAt", "finishedAt", "delayedUntil", "expiredAt")


def no_nulls(value: object, path: str = "") -> None:
    """The client's zod schemas reject null for optional keys: none anywhere but
    `output`/`payload`."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert item is not None or key in ("output", "payload"), f"{path}.{key} is null"
            no_nulls(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            no_nulls(item, f"{path}[{i}]")


async def test_trigger_returns_id_and_a_jwt_scoped_to_the_run(api: httpx.AsyncClient,
                                                              engine: Engine,
                                                              indexed: Version) -> None:
    r = await api.post("/api/v1/tasks/hello/trigger", json={"payload": {"name": "Ada"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["isCached"] is False and body["id"].startswith("run_")
    claims = verify_jwt(SECRET, r.headers["x-trigger-jwt"], engine.clock.now())
    assert claims is not None and claims["scopes"] == [f"read:runs:{body['id']}"] \
        and claims["pub"] is True
    assert claims["iss"] == "https://id.trigger.dev" and claims["aud"] == "https://api.trigger.dev"


async def test_retrieve_shape_has_booleans_decoded_payload_and_no_nulls(api: httpx.AsyncClient,
                                                                       indexed: Version) -> None:
    options = {"tags": ["b", "a"], "metadata": {"step": 1}, "payloadType": "application/super+json",
               "concurrencyKey": 7, "machine": "small-2x", "maxAttempts": 2, "ttl": "1h"}
    payload = json.dumps({"json": {"when": "1970-01-01T00:00:00.000Z"},
                          "meta": {"values": {"when": ["Date"]}}})
    run_id = (await api.post("/api/v1/tasks/hello/trigger",
                             json={"payload": payload, "options": options})).json()["id"]
    run = (await api.get(f"/api/v3/runs/{run_id}")).json()
    no_nulls(run)
    assert run["status"] == "QUEUED" and run["taskIdentifier"] == "hello"
    flags = ("isQueued", "isExecuting", "isCompleted", "isSuccess", "isFailed", "isCancelled",
             "isWaiting", "isTest")
    assert [run[f] for f in flags] == [True, False, False, False, False, False, False, False]
    assert run["payload"] == {"when": "1970-01-01T00:00:00.000Z"}
    assert run["tags"] == ["a", "b"] and run["metadata"] == {"step": 1} and run["ttl"] == "3600s"
    assert run["relatedRuns"] == {} and run["attempts"] == [] and run["depth"] == 0
    assert run["triggerFunction"] == "trigger" and run["durationMs"] == 0 \
        and run["costInCents"] == 0
    assert "output" not in run and "idempotencyKey" not in run
    assert not any(key in run for key in OPTIONAL_DATES)
    assert run["createdAt"].endswith("Z")


async def test_plain_string_payload_and_raw_json_payload(api: httpx.AsyncClient,
                                                         indexed: Version) -> None:
    as_text = {"payload": "hi", "options": {"payloadType": "text/plain"}}
    text = (await api.post("/api/v1/tasks/hello/trigger", json=as_text)).json()["id"]
    raw = (await api.post("/api/v1/tasks/hello/trigger", json={"payload": [1, 2]})).json()["id"]
    assert (await api.get(f"/api/v3/runs/{text}")).json()["payload"] == "hi"
    assert (await api.get(f"/api/v3/runs/{raw}")).json()["payload"] == [1, 2]


async def test_same_idempotency_key_returns_the_same_run_cached(api: httpx.AsyncClient,
                                                                indexed: Version) -> None:
    hashed = hashlib.sha256(b"my-key").hexdigest()
    options = {"idempotencyKey": hashed,
               "idempotencyKeyOptions": {"key": "my-key", "scope": "global"}}
    first = (await api.post("/api/v1/tasks/hello/trigger", json={"options": options})).json()
    second = (await api.post("/api/v1/tasks/hello/trigger", json={"options": options})).json()
    assert second == {"id": first["id"], "isCached": True}
    assert (await api.get(f"/api/v3/runs/{first['id']}")).json()["idempotencyKey"] == "my-key"


async def test_a_failed_runs_key_starts_a_new_run(api: httpx.AsyncClient, engine: Engine,
                                                  indexed: Version) -> None:
    first = (await api.post("/api/v1/tasks/hello/trigger",
                            json={"options": {"idempotencyKey": "k1"}})).json()
    run = (await engine.dequeue(1))[0]
    await engine.start_attempt(run, "worker_1", None)
    failed = AttemptOutcome(ok=False, error={"message": "boom"}, retryable=False)
    await engine.finish_attempt(first["id"], 1, failed)
    second = (await api.post("/api/v1/tasks/hello/trigger",
                             json={"options": {"idempotencyKey": "k1"}})).json()
    assert second["isCached"] is False and second["id"] != first["id"]


async def test_idempotency_key_header_for_rest_callers(api: httpx.AsyncClient,
                                                       indexed: Version) -> None:
    headers = {"idempotency-key": "order-42", "idempotency-key-ttl": "1h"}
    first = (await api.post("/api/v1/tasks/hello/trigger", json={}, headers=headers)).json()
    second = (await api.post("/api/v1/tasks/hello/trigger", json={}, headers=headers)).json()
    assert second == {"id": first["id"], "isCached": True}


async def test_request_idempotency_key_replays_the_first_answer(api: httpx.AsyncClient,
                                                                engine: Engine,
                                                                indexed: Version) -> None:
    headers = {"x-trigger-request-idempotency-key": "3f1c-uuid"}
    first = await api.post("/api/v1/tasks/hello/trigger", json={"payload": 1}, headers=headers)
    again = await api.post("/api/v1/tasks/hello/trigger", json={"payload": 1}, headers=headers)
    assert again.json() == {"id": first.json()["id"], "isCached": False}
    assert "x-trigger-jwt" in again.headers
    assert len(await engine.queries.runs.page()) == 1


async def test_a_request_idempotency_key_too_long_is_400_and_stores_nothing(
        api: httpx.AsyncClient, engine: Engine, indexed: Version) -> None:
    for path, body in (("/api/v1/tasks/hello/trigger", {}),
                       ("/api/v1/tasks/batch", {"items": [{"task": "hello"}]})):
        r = await api.post(path, json=body,
                           headers={"x-trigger-request-idempotency-key": "k" * 60_000})
        assert r.status_code == 400, r.text
        assert "x-trigger-request-idempotency-key" in r.json()["error"]
    assert await engine.queries.runs.page() == []


async def test_unknown_task_is_404_and_lists_known_tasks(api: httpx.AsyncClient,
                                                         indexed: Version) -> None:
    r = await api.post("/api/v1/tasks/nope/trigger", json={})
    assert r.status_code == 404
    assert r.json()["code"] == "task_not_found" and r.json()["known_tasks"] == ["child", "hello"]
    assert "hello" in r.json()["error"]


async def test_before_any_version_runs_wait_for_one(api: httpx.AsyncClient) -> None:
    run_id = (await api.post("/api/v1/tasks/later/trigger", json={})).json()["id"]
    assert (await api.get(f"/api/v3/runs/{run_id}")).json()["status"] == "PENDING_VERSION"


async def test_too_many_tags_is_422(api: httpx.AsyncClient, indexed: Version) -> None:
    r = await api.post("/api/v1/tasks/hello/trigger",
                       json={"options": {"tags": [f"t{i}" for i in range(11)]}})
    assert r.status_code == 422 and "10 tags" in r.json()["error"]


async def test_invalid_delay_is_422(api: httpx.AsyncClient, indexed: Version) -> None:
    r = await api.post("/api/v1/tasks/hello/trigger", json={"options": {"delay": "10x"}})
    assert r.status_code == 422 and "10x" in r.json()["error"]


async def test_wrong_option_types_are_422_not_500(api: httpx.AsyncClient, indexed: Version) -> None:
    wrong = ({"priority": "high"}, {"maxAttempts": 1.5}, {"tags": 3}, {"delay": {"x": 1}}, [1])
    for options in wrong:
        r = await api.post("/api/v1/tasks/hello/trigger", json={"options": options})
        assert r.status_code == 422, (options, r.text)


async def test_delayed_trigger_shows_delayed_until(api: httpx.AsyncClient,
                                                   indexed: Version) -> None:
    delayed = {"options": {"delay": "10m"}}
    run_id = (await api.post("/api/v1/tasks/hello/trigger", json=delayed)).json()["id"]
    run = (await api.get(f"/api/v3/runs/{run_id}")).json()
    assert run["status"] == "DELAYED" and run["isQueued"] is True \
        and run["delayedUntil"].endswith("Z")


async def test_a_task_id_with_a_slash_is_triggered_by_its_encoded_path(
        api: httpx.AsyncClient, services: InProcessServices) -> None:
    """Trigger.dev's SDKs send the task id percent-encoded (`group%2Fhello`); the path is
    decoded before routing, so the route takes the rest of the path up to `/trigger`."""
    services.task_ids = ["group/hello", "hello"]
    await services.index_project("/a", ["trigger"], None, {})
    for sent in ("group%2Fhello", "group/hello"):
        r = await api.post(f"/api/v1/tasks/{sent}/trigger", json={"payload": "{}"})
        assert r.status_code == 200, r.text
        run = (await api.get(f"/api/v3/runs/{r.json()['id']}")).json()
        assert run["taskIdentifier"] == "group/hello"
    assert (await api.post("/api/v1/tasks/hello/trigger", json={})).status_code == 200


async def test_a_huge_number_and_a_deep_payload_are_refused_in_plain_words(
        api: httpx.AsyncClient, indexed: Version) -> None:
    huge = await api.post("/api/v1/tasks/hello/trigger",
                          json={"payload": {}, "options": {"priority": 10**30}})
    assert huge.status_code == 422
    assert huge.json()["error"].startswith("priority is too large: 10000")
    deep = await api.post("/api/v1/tasks/hello/trigger",
                          json={"payload": "[" * 200 + "]" * 200,
                                "options": {"payloadType": "application/json"}})
    assert deep.status_code == 400
    assert "nested deeper than 100 levels. Send JSON" in deep.json()["error"]


async def test_an_empty_queue_name_is_a_400_naming_it_and_triggers_nothing(
        api: httpx.AsyncClient, indexed: Version) -> None:
    """`{"queue": {"name": ""}}` put the run on the task's own queue, in silence; `" "`
    made a queue named " " (and "\\t" was refused as a control character, not as empty)."""
    for queue in ({"name": ""}, "", {"name": " "}, " ", {"name": "\t"}, "\u3000\n ",
                  {"name": " " * 10_000}):
        for path, body in (("/api/v1/tasks/hello/trigger", {"options": {"queue": queue}}),
                           ("/api/v1/tasks/batch",
                            {"items": [{"task": "hello", "options": {"queue": queue}}]})):
            r = await api.post(path, json=body)
            assert r.status_code == 400 and r.json()["error"] == \
                "options.queue.name must not be empty or only whitespace", r.text
    assert (await api.get("/api/v1/runs")).json()["data"] == []
    assert [q["name"] for q in (await api.get("/api/v1/queues")).json()["data"]
            if not q["name"].strip()] == []


async def test_a_flag_option_that_is_not_true_or_false_is_422_and_triggers_nothing(
        api: httpx.AsyncClient, indexed: Version) -> None:
    """`{"test": "false"}` made a test run: any non-empty string (and any non-zero number) read
    as true. The flags take true or false only."""
    for name in ("test", "resumeParentOnCompletion"):
        for value in ("false", "true", 1, 0, [], {}):
            for path, body in (("/api/v1/tasks/hello/trigger", {"options": {name: value}}),
                               ("/api/v1/tasks/batch",
                                {"items": [{"task": "hello", "options": {name: value}}]})):
                r = await api.post(path, json=body)
                assert r.status_code == 422, (name, value, r.text)
                assert r.json()["error"].startswith(f"options.{name} must be true or false"), \
                    r.text
        for path, body in (("/api/v1/tasks/batch", {"items": [{"task": "hello"}],
                                                    "resumeParentOnCompletion": "false"}),
                           ("/api/v3/batches", {"runCount": 1, "resumeParentOnCompletion": 1})):
            r = await api.post(path, json=body)
            assert r.status_code == 422 and r.json()["error"].startswith(
                "resumeParentOnCompletion must be true or false"), r.text
    assert (await api.get("/api/v1/runs")).json()["data"] == []
    for value in (True, False, None):
        run_id = (await api.post("/api/v1/tasks/hello/trigger",
                                 json={"options": {"test": value}})).json()["id"]
        assert (await api.get(f"/api/v3/runs/{run_id}")).json()["isTest"] is bool(value)


async def test_a_body_that_is_no_json_object_is_a_400_saying_what_it_is_in_json_words(
        api: httpx.AsyncClient, indexed: Version) -> None:
    """It said "not NoneType" for `null`, "not list" for an array (Python's names)."""
    for body, kind in (("null", "null"), ("[1]", "an array"), ('"x"', "a string"),
                       ("3", "a number"), ("true", "true")):
        r = await api.post("/api/v1/tasks/hello/trigger", content=body,
                           headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"] == \
            f"Request body must be a JSON object, not {kind}", r.text
    assert (await api.get("/api/v1/runs")).json()["data"] == []


async def test_a_wrong_option_is_named_in_jsons_words(api: httpx.AsyncClient,
                                                      indexed: Version) -> None:
    """`"ttl": true` was refused as "... not True" (Python's word); a string as Python's
    repr ('soon'). Every option's message now shows what came as JSON writes it."""
    for option in ("ttl", "delay", "maxAttempts", "priority", "queue", "idempotencyKey",
                   "idempotencyKeyTTL", "machine", "maxDuration", "lockToVersion", "payloadType",
                   "parentRunId"):
        r = await api.post("/api/v1/tasks/hello/trigger",
                           json={"payload": {}, "options": {option: True}})
        assert r.status_code in (400, 422), (option, r.text)
        said = r.json()["error"]
        assert said.endswith("not true"), (option, said)
    r = await api.post("/api/v1/tasks/hello/trigger",
                       json={"payload": {}, "options": {"ttl": "soon"}})
    assert r.json()["error"].startswith('Invalid ttl "soon"'), r.text
    r = await api.post("/api/v1/tasks/hello/trigger",
                       json={"payload": {}, "options": {"priority": [1]}})
    assert r.json()["error"] == "priority must be a finite number, not an array", r.text


async def test_a_compressed_body_is_a_415_that_says_to_send_it_plain(
        api: httpx.AsyncClient, indexed: Version) -> None:
    """A gzip body was "not valid UTF-8" (400), and a plain body sent with `Content-Encoding:
    br` was taken as if the header were not there; no route decodes a body."""
    plain = json.dumps({"payload": {}}).encode()
    for encoding, body in (("gzip", gzip.compress(plain)), ("br", plain)):
        r = await api.post("/api/v1/tasks/hello/trigger", content=body,
                           headers={"content-type": "application/json",
                                    "content-encoding": encoding})
        assert r.status_code == 415, r.text
        assert r.json()["error"] == (f"Content-Encoding {encoding} is not supported: send the "
                                     "body uncompressed, with no Content-Encoding header")
    r = await api.post("/api/v3/batches/batch_x/items", content=gzip.compress(b'{"index":0}\n'),
                       headers={"content-encoding": "gzip"})
    assert r.status_code == 415, r.text
    for headers in ([("content-encoding", "identity"), ("content-encoding", "gzip")],
                    [("content-encoding", "identity, br")]):  # a second header, a list
        r = await api.post("/api/v1/tasks/hello/trigger", content=gzip.compress(plain),
                           headers=headers)
        assert r.status_code == 415, r.text
    r = await api.post("/api/v1/tasks/hello/trigger", content=plain,
                       headers={"content-encoding": "identity"})
    assert r.status_code == 200, r.text
