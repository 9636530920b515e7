"""Durable records over the worker protocol (docs/durability.md): a call sent with a `record`
is recorded with what it made; the same record in a later attempt gets the same waitpoint,
token or child; another call at a recorded seq is a non-deterministic replay (422)."""

from __future__ import annotations

import httpx

from tests.test_api_worker import as_run, start
from trigger_local.clock import FakeClock
from trigger_local.config import DaemonSettings
from trigger_local.engine import Engine
from trigger_local.store.models import Version


async def _next_attempt(api: httpx.AsyncClient, engine: Engine, assignment: dict) -> dict:
    """Interrupt the attempt (its process is gone) and start the next, which replays."""
    await engine.records.resume_by_replay(assignment["run_id"], assignment["attempt"], "gone")
    r = await api.get("/engine/v1/workers/worker_test/next", params={"wait_s": "0"},
                      headers={"Authorization": "Bearer " + _worker_token()})
    nxt: dict = r.json()["assignment"]
    assert nxt["run_id"] == assignment["run_id"] and nxt["attempt"] == assignment["attempt"] + 1
    return nxt


def _worker_token() -> str:
    from tests.test_api_worker import as_worker
    return as_worker()["Authorization"].split(" ", 1)[1]


async def test_a_replayed_duration_wait_blocks_on_the_same_waitpoint_and_due_time(
        api: httpx.AsyncClient, engine: Engine, clock: FakeClock, indexed: Version) -> None:
    a = await start(api)
    rid = a["run_id"]
    record = {"seq": 1, "kind": "wait.for"}
    first = (await api.post(f"/engine/v1/runs/{rid}/attempts/1/wait",
                            json={"kind": "duration", "until": clock.now() + 60,
                                  "record": record}, headers=as_run(a))).json()
    assert first["action"] == "hold"
    b = await _next_attempt(api, engine, a)
    clock.advance(30)
    again = (await api.post(f"/engine/v1/runs/{rid}/attempts/2/wait",
                            json={"kind": "duration", "until": clock.now() + 60,
                                  "record": record}, headers=as_run(b))).json()
    assert again["waitpointId"] == first["waitpointId"]
    wp = await engine.queries.waitpoints.get(first["waitpointId"])
    assert wp is not None and wp.complete_after == clock.now() - 30 + 60
    [step] = await engine.queries.steps.for_run(rid)
    assert (step.seq, step.kind, step.status, step.attempt) == (1, "wait.for", "pending", 1)


async def test_a_replayed_token_and_child_are_the_ones_made_the_first_time(
        api: httpx.AsyncClient, engine: Engine, clock: FakeClock, indexed: Version) -> None:
    a = await start(api)
    rid = a["run_id"]
    token = (await api.post(f"/engine/v1/runs/{rid}/tokens",
                            json={"record": {"seq": 1, "kind": "token.create"}},
                            headers=as_run(a))).json()
    # the child is queued later than the run, which is queued again at its first queue time
    # and so dequeued first (at one instant the order is the ids', random within 1 ms)
    clock.advance(1)
    child = (await api.post(f"/engine/v1/runs/{rid}/trigger",
                            json={"task": "child", "record": {"seq": 2, "kind": "trigger",
                                                              "name": "child"}},
                            headers=as_run(a))).json()
    b = await _next_attempt(api, engine, a)
    token2 = (await api.post(f"/engine/v1/runs/{rid}/tokens",
                             json={"record": {"seq": 1, "kind": "token.create"}},
                             headers=as_run(b))).json()
    child2 = (await api.post(f"/engine/v1/runs/{rid}/trigger",
                             json={"task": "child", "record": {"seq": 2, "kind": "trigger",
                                                               "name": "child"}},
                             headers=as_run(b))).json()
    assert token2["id"] == token["id"] and token2["isCached"] is True
    assert child2["id"] == child["id"] and child2["isCached"] is True
    assert [r.id for r in await engine.queries.runs.children(rid)] == [child["id"]]
    kinds = [(s.seq, s.kind, s.status) for s in await engine.queries.steps.for_run(rid)]
    assert kinds == [(1, "token.create", "completed"), (2, "trigger", "completed")]


async def test_another_call_at_a_recorded_seq_is_a_non_deterministic_replay(
        api: httpx.AsyncClient, engine: Engine, indexed: Version) -> None:
    a = await start(api)
    rid = a["run_id"]
    await api.post(f"/engine/v1/runs/{rid}/tokens",
                   json={"record": {"seq": 1, "kind": "token.create"}}, headers=as_run(a))
    r = await api.post(f"/engine/v1/runs/{rid}/attempts/1/steps",
                       json={"record": {"seq": 1, "kind": "step", "name": "x"},
                             "status": "completed", "result": "1"}, headers=as_run(a))
    assert r.status_code == 422
    assert r.json()["error"] == ("non-deterministic replay at step 1: expected "
                                 "wait.create_token, got step.run('x')")
    assert r.json()["code"] == "non_deterministic_replay"


async def test_a_step_result_is_kept_once_and_a_large_one_goes_to_the_packet_store(
        api: httpx.AsyncClient, engine: Engine, settings: DaemonSettings,
        indexed: Version) -> None:
    a = await start(api)
    rid = a["run_id"]
    url = f"/engine/v1/runs/{rid}/attempts/1/steps"
    big = '"' + "z" * 200_000 + '"'
    for result in ('"first"', '"second"'):
        r = await api.post(url, json={"record": {"seq": 1, "kind": "step", "name": "a"},
                                      "status": "completed", "result": result},
                           headers=as_run(a))
        assert r.json() == {"seq": 1, "status": "completed"}
    await api.post(url, json={"record": {"seq": 2, "kind": "step", "name": "b"},
                              "status": "completed", "result": big}, headers=as_run(a))
    first, second = await engine.queries.steps.for_run(rid)
    assert first.result == '"first"'  # a completed record is never replaced
    assert (second.result, second.result_type) == (f"steps/{rid}/2", "application/store")
    assert (settings.home / "packets" / "steps" / rid / "2").read_text() == big


async def test_bad_records_are_refused_with_what_to_send(api: httpx.AsyncClient,
                                                         indexed: Version) -> None:
    a = await start(api)
    rid = a["run_id"]
    cases = [({"record": {"seq": 0, "kind": "step"}, "status": "completed"}, "record.seq"),
             ({"record": {"seq": 1, "kind": "nope"}, "status": "completed"}, "record.kind"),
             ({"record": "x", "status": "completed"}, "record must be an object"),
             ({"status": "completed"}, "record {seq, kind, name} is required"),
             ({"record": {"seq": 1, "kind": "step"}, "status": "maybe"}, "completed or failed"),
             ({"record": {"seq": 1, "kind": "wait.for"}, "status": "completed"},
              "only step and checkpoint records carry a result")]
    for body, said in cases:
        r = await api.post(f"/engine/v1/runs/{rid}/attempts/1/steps", json=body,
                           headers=as_run(a))
        assert r.status_code == 422, (body, r.text)
        assert said in r.json()["error"], (body, r.json())
