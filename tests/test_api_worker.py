"""The worker protocol over HTTP: assignments, completion, waits that hold and resume, children."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.conftest import SECRET, T0, InProcessServices
from trigger_local.api.auth import run_token, worker_token
from trigger_local.clock import FakeClock
from trigger_local.engine import Engine
from trigger_local.store.models import Version

WORKER = "worker_test"


def as_worker(worker_id: str = WORKER) -> dict[str, str]:
    return {"Authorization": f"Bearer {worker_token(SECRET, worker_id)}"}


def as_run(assignment: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {assignment['run_token']}"}


async def start(api: httpx.AsyncClient, task: str = "hello") -> dict:
    await api.post(f"/api/v1/tasks/{task}/trigger", json={"payload": {"n": 1}})
    r = await api.get(f"/engine/v1/workers/{WORKER}/next", params={"wait_s": "0"},
                      headers=as_worker())
    assert r.status_code == 200, r.text
    return r.json()["assignment"]


async def resume_held(engine: Engine) -> None:
    """What the dispatcher does for a held run whose wait completed."""
    for run in await engine.dequeue(10):
        assert await engine.resume_held(run) is not None


async def test_next_then_complete_finishes_the_run(api: httpx.AsyncClient,
                                                   indexed: Version) -> None:
    assignment = await start(api)
    assert assignment["run_token"] == run_token(SECRET, assignment["run_id"], 1)
    assert json.loads(assignment["payload"]) == {"n": 1}
    url = f"/engine/v1/runs/{assignment['run_id']}/attempts/1/complete"
    r = await api.post(url,
                       json={"ok": True, "output": '{"done":true}',
                             "outputType": "application/json"},
                       headers=as_run(assignment))
    assert r.json() == {"status": "COMPLETED"}
    run = (await api.get(f"/api/v3/runs/{assignment['run_id']}")).json()
    assert run["status"] == "COMPLETED" and run["output"] == {"done": True} \
        and run["isSuccess"] is True
    assert run["attempts"][0]["status"] == "COMPLETED" and run["attemptCount"] == 1


async def test_failure_without_retry_fails_the_run_with_its_error(api: httpx.AsyncClient,
                                                                  indexed: Version) -> None:
    a = await start(api)
    body = {"ok": False,
            "error": {"name": "ValueError", "message": "bad", "stack": "Traceback..."},
            "retry": False}
    r = await api.post(f"/engine/v1/runs/{a['run_id']}/attempts/1/complete", json=body,
                       headers=as_run(a))
    assert r.json() == {"status": "FAILED"}
    run = (await api.get(f"/api/v3/runs/{a['run_id']}")).json()
    assert run["error"] == {"message": "bad", "name": "ValueError", "stackTrace": "Traceback..."}
    assert run["isFailed"] is True and "output" not in run


async def test_no_work_retire_and_bad_tokens(api: httpx.AsyncClient, services: InProcessServices,
                                             indexed: Version) -> None:
    r = await api.get(f"/engine/v1/workers/{WORKER}/next", params={"wait_s": "0"},
                      headers=as_worker())
    assert r.json() == {"assignment": None}
    r = await api.get(f"/engine/v1/workers/{WORKER}/next", headers=as_worker("worker_other"))
    assert r.status_code == 401
    services.retire.add(WORKER)
    assert (await api.get(f"/engine/v1/workers/{WORKER}/next", headers=as_worker())).json() \
        == {"retire": True}
    services.retire.clear()
    a = await start(api)
    wrong = {"Authorization": f"Bearer {run_token(SECRET, a['run_id'], 2)}"}
    assert (await api.post(f"/engine/v1/runs/{a['run_id']}/logs", json={"entries": []},
                           headers=wrong)).status_code == 401
    assert (await api.post(f"/engine/v1/runs/{a['run_id']}/attempts/1/complete", json={"ok": True},
                           headers=wrong)).status_code == 401


async def test_duration_wait_holds_then_resumes_after_the_timer(
        api: httpx.AsyncClient, engine: Engine, clock: FakeClock, indexed: Version) -> None:
    a = await start(api)
    rid = a["run_id"]
    r = await api.post(f"/engine/v1/runs/{rid}/attempts/1/wait",
                       json={"kind": "duration", "until": T0 + 60},
                       headers=as_run(a))
    assert r.json()["action"] == "hold"
    wp = r.json()["waitpointId"]
    poll = f"/engine/v1/runs/{rid}/waits/{wp}"
    assert (await api.get(poll, params={"wait_s": "0"}, headers=as_run(a))).json() \
        == {"done": False}
    assert (await api.get(f"/api/v3/runs/{rid}")).json()["status"] == "WAITING"
    long_poll = asyncio.create_task(api.get(poll, params={"wait_s": "30"}, headers=as_run(a)))
    clock.advance(61)
    assert await engine.tick_timers() >= 1
    await resume_held(engine)
    # woken by the resume, not the 30 s bound
    result = (await asyncio.wait_for(long_poll, 5)).json()
    assert result["done"] is True and result["result"]["ok"] is True
    done = await api.post(f"/engine/v1/runs/{rid}/attempts/1/complete",
                          json={"ok": True, "output": None},
                          headers=as_run(a))
    assert done.json() == {"status": "COMPLETED"}
    trace = (await api.get(f"/api/v1/runs/{rid}/trace")).json()
    assert [w["type"] for w in trace["waits"]] == ["DATETIME"]


async def test_trigger_and_wait_for_a_child(api: httpx.AsyncClient, engine: Engine,
                                            indexed: Version) -> None:
    parent = await start(api)
    pid = parent["run_id"]
    body = {"task": "child", "payload": '{"x":1}', "payloadType": "application/json",
            "options": {"tags": ["kid"]}, "wait": True}
    child = (await api.post(f"/engine/v1/runs/{pid}/trigger", json=body,
                            headers=as_run(parent))).json()
    assert child["isCached"] is False and child["waitpointId"]
    w = await api.post(f"/engine/v1/runs/{pid}/attempts/1/wait",
                       json={"kind": "run", "waitpointId": child["waitpointId"]},
                       headers=as_run(parent))
    assert w.json()["action"] == "hold"
    c = (await api.get(f"/engine/v1/workers/{WORKER}/next", params={"wait_s": "0"},
                       headers=as_worker())).json()
    assert c["assignment"]["run_id"] == child["id"]
    await api.post(f"/engine/v1/runs/{child['id']}/attempts/1/complete",
                   json={"ok": True, "output": '"hi"'},
                   headers=as_run(c["assignment"]))
    await resume_held(engine)
    result = (await api.get(f"/engine/v1/runs/{pid}/waits/{child['waitpointId']}",
                            params={"wait_s": "1"},
                            headers=as_run(parent))).json()
    assert result["done"] and result["result"]["output"] == '"hi"'
    retrieved = (await api.get(f"/api/v3/runs/{child['id']}")).json()
    assert retrieved["triggerFunction"] == "triggerAndWait" and retrieved["depth"] == 1
    assert retrieved["relatedRuns"]["parent"]["id"] == pid \
        and retrieved["relatedRuns"]["root"]["id"] == pid
    assert (await api.get(f"/api/v3/runs/{pid}")).json()["relatedRuns"]["children"][0]["id"] \
        == child["id"]


async def test_batch_from_a_task_and_its_waitpoint(api: httpx.AsyncClient,
                                                   indexed: Version) -> None:
    parent = await start(api)
    items = [{"task": "child", "payload": str(i), "payloadType": "application/json", "options": {}}
             for i in range(3)]
    out = (await api.post(f"/engine/v1/runs/{parent['run_id']}/batch",
                          json={"items": items, "wait": True},
                          headers=as_run(parent))).json()
    assert len(out["runs"]) == 3 and out["waitpointId"] and out["batchId"].startswith("batch_")
    batch = (await api.get(f"/api/v2/batches/{out['batchId']}")).json()
    assert batch["runs"] == [r["id"] for r in out["runs"]]
    child = (await api.get(f"/api/v3/runs/{out['runs'][0]['id']}")).json()
    assert child["triggerFunction"] == "batchTriggerAndWait"


async def test_logs_metadata_and_tokens_from_a_task(api: httpx.AsyncClient,
                                                    indexed: Version) -> None:
    a = await start(api)
    rid = a["run_id"]
    entries = [{"at": T0, "level": "info", "message": "hello", "attributes": {"k": 1},
                "kind": "log"},
               {"at": "2023-11-14T22:13:20Z", "level": "info", "message": "work", "kind": "span",
                "spanId": "s1",
                "endedAt": T0 + 1}]
    assert (await api.post(f"/engine/v1/runs/{rid}/logs", json={"attempt": 1, "entries": entries},
                           headers=as_run(a))).json() == {}
    logs = (await api.get(f"/api/v1/runs/{rid}/logs")).json()["data"]
    assert [e["message"] for e in logs] == ["hello", "work"] and logs[1]["durationMs"] == 1000
    meta = await api.put(f"/engine/v1/runs/{rid}/metadata", json={"metadata": {"p": 1}},
                         headers=as_run(a))
    assert meta.json() == {"metadata": {"p": 1}}
    token = (await api.post(f"/engine/v1/runs/{rid}/tokens", json={"timeout": "1h"},
                            headers=as_run(a))).json()
    assert token["isCached"] is False \
        and token["url"].endswith(token["id"] + "/callback/" + token["url"][-64:])
    w = (await api.post(f"/engine/v1/runs/{rid}/attempts/1/wait",
                        json={"kind": "token", "waitpointId": token["id"]},
                        headers=as_run(a))).json()
    assert w["action"] == "hold"


async def test_a_previous_attempts_token_gets_409(api: httpx.AsyncClient, engine: Engine,
                                                  clock: FakeClock,
                                                  indexed: Version) -> None:
    await api.post("/api/v1/tasks/hello/trigger", json={"options": {"maxAttempts": 2}})
    a = (await api.get(f"/engine/v1/workers/{WORKER}/next", params={"wait_s": "0"},
                       headers=as_worker())).json()
    a = a["assignment"]
    rid = a["run_id"]
    failed = {"ok": False, "error": {"message": "x"}, "retry": True}
    assert (await api.post(f"/engine/v1/runs/{rid}/attempts/1/complete", json=failed,
                           headers=as_run(a))).json()["status"] == "DELAYED"
    clock.advance(120)
    await engine.tick_timers()
    second = (await api.get(f"/engine/v1/workers/{WORKER}/next", params={"wait_s": "0"},
                            headers=as_worker())).json()
    assert second["assignment"]["attempt"] == 2
    stale = await api.post(f"/engine/v1/runs/{rid}/logs", json={"entries": []}, headers=as_run(a))
    assert stale.status_code == 409 and stale.headers["x-should-retry"] == "false"
    fresh = await api.post(f"/engine/v1/runs/{rid}/logs", json={"entries": []},
                           headers=as_run(second["assignment"]))
    assert fresh.status_code == 200


async def test_complete_can_carry_the_next_assignment(api: httpx.AsyncClient,
                                                      indexed: Version) -> None:
    first = await start(api)
    await api.post("/api/v1/tasks/hello/trigger", json={"payload": {"n": 2}})
    body = {"ok": True, "output": None,
            "next": {"workerId": WORKER, "workerToken": worker_token(SECRET, WORKER),
                                                 "waitS": 0}}
    r = await api.post(f"/engine/v1/runs/{first['run_id']}/attempts/1/complete", json=body,
                       headers=as_run(first))
    answer = r.json()
    assert answer["status"] == "COMPLETED"
    second = answer["next"]["assignment"]
    assert second["run_id"] != first["run_id"] and json.loads(second["payload"]) == {"n": 2}
    bad = {**body, "next": {**body["next"], "workerToken": "nope"}}
    r = await api.post(f"/engine/v1/runs/{second['run_id']}/attempts/1/complete", json=bad,
                       headers=as_run(second))
    assert r.status_code == 401
    # unchanged
    assert (await api.get(f"/api/v3/runs/{second['run_id']}")).json()["status"] == "EXECUTING"


async def test_completions_of_several_runs_in_one_request(api: httpx.AsyncClient,
                                                          engine: Engine,
                                                          indexed: Version) -> None:
    first, second = await start(api), await start(api)

    def item(a: dict, token: str | None = None) -> dict:
        return {"runId": a["run_id"], "attempt": 1, "runToken": token or a["run_token"],
                "ok": True, "output": '"done"', "outputType": "application/json"}

    url = f"/engine/v1/workers/{WORKER}/complete"
    # one bad token refuses the whole request: nothing of it is committed
    bad = await api.post(url, json={"completions": [item(first), item(second, "nope")]},
                         headers=as_worker())
    assert bad.status_code == 401, bad.text
    assert (await api.get(f"/api/v3/runs/{first['run_id']}")).json()["status"] == "EXECUTING"
    batches = engine.group.batches
    r = await api.post(url, json={"completions": [item(first), item(second)]},
                       headers=as_worker())
    assert r.json() == {"results": [{"status": "COMPLETED"}, {"status": "COMPLETED"}]}
    assert engine.group.batches == batches + 1  # finished together: one transaction
    again = await api.post(url, json={"completions": [item(first)]}, headers=as_worker())
    assert again.json() == {"results": [{"gone": True}]}  # a replay: already committed
    wrong = await api.post(url, json={"completions": [item(first)]}, headers=as_worker("w2"))
    assert wrong.status_code == 401
    shapeless = await api.post(url, json={"completions": "x"}, headers=as_worker())
    assert shapeless.status_code == 422
