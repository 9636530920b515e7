"""Runs management: list filters and cursor pages, cancel, replay, reschedule, metadata, logs,
trace."""

from __future__ import annotations

import httpx

from tests.conftest import T0
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine
from trigger_local.store.models import LogEntry, Version


async def trigger(api: httpx.AsyncClient, task: str = "hello", **options: object) -> str:
    r = await api.post(f"/api/v1/tasks/{task}/trigger",
                       json={"payload": {"task": task}, "options": options})
    assert r.status_code == 200, r.text
    return r.json()["id"]


async def test_list_pages_through_every_run_newest_first(api: httpx.AsyncClient, clock: FakeClock,
                                                         indexed: Version) -> None:
    ids = []
    for _ in range(7):
        ids.append(await trigger(api))
        clock.advance(1)
    seen, after, pages = [], None, 0
    while True:
        params = {"page[size]": "3", **({"page[after]": after} if after else {})}
        body = (await api.get("/api/v1/runs", params=params)).json()
        seen += [r["id"] for r in body["data"]]
        pages += 1
        assert all(r["env"] == {"id": "env_local", "name": "dev"} for r in body["data"])
        after = body["pagination"].get("next")
        if after is None:
            break
    assert seen == list(reversed(ids)) and pages == 3
    back = (await api.get("/api/v1/runs",
                          params={"page[size]": "3", "page[before]": seen[3]})).json()
    assert [r["id"] for r in back["data"]] == seen[:3] and "previous" not in back["pagination"]


async def test_list_filters(api: httpx.AsyncClient, clock: FakeClock, indexed: Version) -> None:
    tagged = await trigger(api, tags=["t1"], machine="small-2x")
    clock.advance(3600)
    child = await trigger(api, "child", test=True)
    delayed = await trigger(api, delay="1h")

    async def ids(**params: str) -> list[str]:
        r = await api.get("/api/v1/runs", params={f"filter[{k}]": v for k, v in params.items()})
        assert r.status_code == 200, r.text
        return [run["id"] for run in r.json()["data"]]

    assert await ids(taskIdentifier="child") == [child]
    assert await ids(tag="t1") == [tagged]
    assert await ids(status="DELAYED") == [delayed]
    assert set(await ids(status="QUEUED,DELAYED")) == {tagged, child, delayed}
    assert await ids(machine="small-2x") == [tagged]
    assert await ids(isTest="true") == [child]
    assert await ids(queue="task/child") == [child]
    assert set(await ids(**{"createdAt][period": "30m"})) == {child, delayed}
    assert await ids(**{"createdAt][to": str(int((T0 + 1) * 1000))}) == [tagged]


async def test_list_filters_by_idempotency_key(api: httpx.AsyncClient, indexed: Version) -> None:
    keyed = await trigger(api, idempotencyKey="order-7")
    await trigger(api, idempotencyKey="order-8")
    await trigger(api)
    r = await api.get("/api/v1/runs", params={"filter[idempotencyKey]": "order-7"})
    assert r.status_code == 200, r.text
    assert [run["id"] for run in r.json()["data"]] == [keyed]


async def test_invalid_filters_are_400(api: httpx.AsyncClient) -> None:
    for params in ({"filter[status]": "SLEEPING"}, {"filter[machine]": "huge"},
                   {"filter[isTest]": "maybe"},
                   {"filter[createdAt][period]": "forever"},
                   {"filter[createdAt][from]": "yesterday"},
                   {"page[size]": "0"}):
        r = await api.get("/api/v1/runs", params=params)
        assert r.status_code == 400, params
    assert "Invalid status values: SLEEPING" in (await api.get("/api/v1/runs", params={
        "filter[status]": "SLEEPING"})).json()["error"]


async def test_cancel_then_cancel_again_and_404(api: httpx.AsyncClient, indexed: Version) -> None:
    run_id = await trigger(api)
    assert (await api.post(f"/api/v2/runs/{run_id}/cancel")).json()["id"] == run_id
    assert (await api.post(f"/api/v2/runs/{run_id}/cancel")).status_code == 200
    run = (await api.get(f"/api/v3/runs/{run_id}")).json()
    assert run["status"] == "CANCELED" and run["isCancelled"] and run["isFailed"] \
        and "finishedAt" in run
    missing = await api.post("/api/v2/runs/run_missing/cancel")
    assert missing.status_code == 404 and missing.json()["error"] == "Run not found"
    assert (await api.get("/api/v3/runs/run_missing")).status_code == 404


async def test_replay_with_and_without_overrides(api: httpx.AsyncClient, indexed: Version) -> None:
    run_id = await trigger(api, tags=["a"])
    same = (await api.post(f"/api/v1/runs/{run_id}/replay", content=b"")).json()["id"]
    replayed = (await api.get(f"/api/v3/runs/{same}")).json()
    assert same != run_id and replayed["payload"] == {"task": "hello"} and replayed["tags"] == ["a"]
    other = (await api.post(f"/api/v1/runs/{run_id}/replay",
                            json={"payload": {"v": 2}, "tags": ["b"]})).json()["id"]
    overridden = (await api.get(f"/api/v3/runs/{other}")).json()
    assert overridden["payload"] == {"v": 2} and overridden["tags"] == ["b"]
    assert (await api.post("/api/v1/runs/run_missing/replay")).status_code == 404


async def test_reschedule_only_delayed_runs(api: httpx.AsyncClient, clock: FakeClock,
                                            indexed: Version) -> None:
    delayed = await trigger(api, delay="10m")
    r = await api.post(f"/api/v1/runs/{delayed}/reschedule", json={"delay": "1h"})
    assert r.status_code == 200 and r.json()["id"] == delayed and r.json()["status"] == "DELAYED"
    assert r.json()["delayedUntil"] == "2023-11-14T23:13:20.000Z"
    queued = await trigger(api)
    refused = await api.post(f"/api/v1/runs/{queued}/reschedule", json={"delay": "1h"})
    assert refused.status_code == 400 and "DELAYED" in refused.json()["error"]
    assert (await api.post(f"/api/v1/runs/{delayed}/reschedule", json={})).status_code == 400
    r = await api.post(f"/api/v1/runs/{delayed}/reschedule", json={"delay": "1y"})
    assert r.status_code == 400


async def test_metadata_replace_operations_and_parent_ops(api: httpx.AsyncClient, engine: Engine,
                                                          indexed: Version) -> None:
    run_id = await trigger(api, metadata={"keep": True})
    body = {"metadata": {"progress": 0.5},
            "operations": [{"type": "increment", "key": "count", "value": 2},
                           {"type": "append", "key": "log", "value": "a"}]}
    r = await api.put(f"/api/v1/runs/{run_id}/metadata", json=body)
    assert r.json() == {"metadata": {"progress": 0.5, "count": 2, "log": ["a"]}}
    assert (await api.get(f"/api/v1/runs/{run_id}/metadata")).json()["metadata"]["count"] == 2
    assert (await api.get(f"/api/v3/runs/{run_id}")).json()["metadata"]["log"] == ["a"]
    bad = await api.put(f"/api/v1/runs/{run_id}/metadata", json={"operations": [{"key": "x"}]})
    assert bad.status_code == 400
    await api.post(f"/api/v2/runs/{run_id}/cancel")
    done = await api.put(f"/api/v1/runs/{run_id}/metadata", json={"metadata": {}})
    assert done.status_code == 422 and "completed run" in done.json()["error"]
    assert (await api.put("/api/v1/runs/run_missing/metadata", json={})).status_code == 404


async def test_logs_follow_with_after_and_trace(api: httpx.AsyncClient, engine: Engine,
                                                indexed: Version) -> None:
    run_id = await trigger(api)
    await engine.append_logs([
        LogEntry(run_id=run_id, at=T0, level="info", message="one", attempt=1),
        LogEntry(run_id=run_id, at=T0, level="info", message="span", kind="span", span_id="s1",
                 ended_at=T0 + 0.25, attempt=1)])
    first = (await api.get(f"/api/v1/runs/{run_id}/logs")).json()
    assert [e["message"] for e in first["data"]] == ["one", "span"]
    await engine.append_logs([LogEntry(run_id=run_id, at=T0, level="warn", message="two")])
    newer = (await api.get(f"/api/v1/runs/{run_id}/logs", params={"after": first["next"]})).json()
    assert [e["message"] for e in newer["data"]] == ["two"] and newer["next"] > first["next"]
    trace = (await api.get(f"/api/v1/runs/{run_id}/trace")).json()
    assert trace["run"]["id"] == run_id and trace["spans"][0]["durationMs"] == 250
    assert [s["status"] for s in trace["snapshots"]] == ["QUEUED"]
    assert {"attempts", "children", "waits", "logs", "events"} <= set(trace)
    assert (await api.get("/api/v1/runs/run_missing/trace")).status_code == 404


async def test_trace_of_a_compacted_run_shows_its_final_snapshot(
        api: httpx.AsyncClient, engine: Engine, clock: FakeClock, indexed: Version) -> None:
    run_id = await trigger(api)
    await engine.dequeue(10)
    run = await engine.queries.runs.get(run_id)
    assert run is not None and await engine.start_attempt(run, "worker_1", 1) is not None
    done = await engine.finish_attempt(run_id, 1, AttemptOutcome(ok=True, output="1"))
    canceled = await trigger(api)
    assert (await api.post(f"/api/v2/runs/{canceled}/cancel")).status_code == 200
    clock.advance(engine.ctx.settings.compact_after_s + 1)
    assert await engine.prune(100) == (2, [])
    assert await engine.queries.snapshots.for_run(run_id) == []  # the row says it all
    trace = (await api.get(f"/api/v1/runs/{run_id}/trace")).json()
    assert [(s["id"], s["kind"], s["status"], s["description"]) for s in trace["snapshots"]] \
        == [(done.snapshot_id, "finished", "COMPLETED", "")]
    assert trace["snapshots"][0]["at"] == trace["run"]["finishedAt"]
    trace = (await api.get(f"/api/v1/runs/{canceled}/trace")).json()
    reason = trace["run"]["error"]["message"]
    assert reason and [(s["status"], s["description"]) for s in trace["snapshots"]] \
        == [("CANCELED", reason)]  # why it ended: the run's error


async def test_a_cursor_that_is_no_listed_id_is_a_400_not_an_empty_page(
        api: httpx.AsyncClient) -> None:
    await trigger(api)
    for path, name in (("/api/v1/runs", "page[after]"), ("/api/v1/runs", "page[before]"),
                       ("/api/v1/waitpoints/tokens", "page[after]"),
                       ("/api/v1/waitpoints/tokens", "page[before]")):
        answer = await api.get(path, params={name: "garbage"})
        assert answer.status_code == 400, (path, name, answer.text)
        assert name in answer.text and "garbage" in answer.text, answer.text
    listed = (await api.get("/api/v1/runs", params={"page[after]": "run_gone"})).json()
    assert listed["data"] == []  # a well-formed cursor whose run is gone: an empty page


async def test_an_increment_out_of_range_says_the_range(api: httpx.AsyncClient,
                                                        indexed: Version) -> None:
    # 1e308 is finite: it was refused as not "a finite number to increment by"
    run_id = await trigger(api)
    for value, shown in ((1e308, "1e+308"), (2**64, "18446744073709551616"), ("5", '"5"'),
                         (True, "true"), (None, "null")):
        r = await api.put(f"/api/v1/runs/{run_id}/metadata",
                          json={"operations": [{"type": "increment", "key": "n", "value": value}]})
        assert r.status_code == 422, r.text
        assert r.json()["error"] == ("operations[0].value must be a number from "
                                     "-9,007,199,254,740,992 to 9,007,199,254,740,992 to "
                                     f"increment by, not {shown}"), r.text
    # an integer past a float's range (JSON allows any number of digits) was an
    # OverflowError (math.isfinite, then the message's formatting): a 500
    huge = '{"operations": [{"type": "increment", "key": "n", "value": 1%s}]}' % ("0" * 400)
    r = await api.put(f"/api/v1/runs/{run_id}/metadata", content=huge)
    assert r.status_code == 422, r.text
    assert r.json()["error"].endswith("to increment by, not a number of 401 digits"), r.text
    ok = await api.put(f"/api/v1/runs/{run_id}/metadata",
                       json={"operations": [{"type": "increment", "key": "n", "value": 2**53}]})
    assert ok.json() == {"metadata": {"n": 2**53}}
