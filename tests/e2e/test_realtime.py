"""Realtime subscriptions and streams against a real daemon, through the Python SDK and the raw
protocol @trigger.dev/sdk speaks (docs/realtime.md)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from trigger_local import RunHandle, runs, streams, tasks
from trigger_local.sdk.client import configure

from .conftest import DaemonProcess, wait_for, write_project

REALTIME_TASKS = '''
import asyncio
from trigger_local import task, wait, metadata, logger, streams

tokens = streams.define("tokens")

async def words(n):
    for i in range(n):
        yield {"token": f"w{i}"}

@task(id="steps")
async def steps(payload, ctx):
    metadata.set("step", 1)
    await metadata.flush()
    token = await wait.create_token(idempotency_key=f"gate-{ctx.run.id}")
    metadata.set("token", token.id)
    await metadata.flush()
    await wait.for_token(token)
    metadata.set("step", 2)
    return {"done": payload.get("n", 0)}

@task(id="streamer")
async def streamer(payload, ctx):
    logger.info("streaming", n=payload["n"])
    seen = [c async for c in streams.pipe("tokens", words(payload["n"]))]
    streams.append("tokens", "tail")
    streams.append("plain text")
    tokens.append({"typed": True})
    await metadata.stream("legacy", words(2))
    if payload.get("gate"):
        token = await wait.create_token(idempotency_key=f"gate-{ctx.run.id}")
        metadata.set("token", token.id)
        await metadata.flush()
        await wait.for_token(token)
        streams.append("tokens", "after the wait")
    return {"piped": len(seen)}

@task(id="quick")
async def quick(payload, ctx):
    return payload

@task(id="sync-streamer")
def sync_streamer(payload, ctx):
    for i in range(3):
        streams.append("sync", i)
    return streams.pipe("sync-piped", iter(["a", "b"])).wait_sync()
'''


@pytest.fixture(scope="module")
def rt_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    root = tmp_path_factory.mktemp("realtime")
    d = DaemonProcess(root / "home", env={"TRIGGER_LOCAL_HOME": str(root / "home"),
                                          "TRIGGER_LOCAL_REALTIME_HOLD_S": "2"})
    d.start()
    d.register(write_project(root / "rtproj", REALTIME_TASKS))
    yield d
    d.close()


@pytest.fixture
def rt(rt_daemon: DaemonProcess) -> Iterator[DaemonProcess]:
    """The module's daemon, with the SDK pointed at it."""
    configure(base_url=rt_daemon.url, secret_key=rt_daemon.key)
    yield rt_daemon
    configure()


def _token_of(daemon: DaemonProcess, run_id: str) -> str:
    token: str = wait_for(lambda: daemon.run(run_id)["metadata"].get("token"), 30,
                          what="the run's token")
    return token


def _complete(daemon: DaemonProcess, token: str) -> None:
    r = daemon.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": {}})
    assert r.status_code == 200, r.text


def _collect(iterator: Iterator[dict[str, Any]], into: list[dict[str, Any]]) -> threading.Thread:
    thread = threading.Thread(target=lambda: into.extend(iterator), daemon=True)
    thread.start()
    return thread


def test_subscribe_to_run_yields_each_change_once_and_ends(rt: DaemonProcess) -> None:
    run_id = rt.trigger("steps", {"n": 3})
    rows: list[dict[str, Any]] = []
    thread = _collect(runs.subscribe_to_run_sync(run_id), rows)
    wait_for(lambda: any(r["status"] == "WAITING" for r in rows), 30, what="a WAITING row")
    _complete(rt, _token_of(rt, run_id))
    thread.join(30)
    assert not thread.is_alive(), "the subscription did not end with the run"
    assert rows[-1]["status"] == "COMPLETED" and rows[-1]["output"] == {"done": 3}
    assert rows[-1]["metadata"]["step"] == 2
    states = [json.dumps(r, sort_keys=True) for r in rows]
    assert len(states) == len(set(states)), "a change was sent twice"
    assert all(r["id"] == run_id for r in rows)
    # in order: the metadata only grows, and nothing comes after the end
    steps = [r["metadata"].get("step", 0) for r in rows]
    assert steps == sorted(steps) and [r["status"] for r in rows].count("COMPLETED") == 1


def test_a_subscriber_that_comes_back_misses_nothing_and_gets_nothing_twice(
        rt: DaemonProcess) -> None:
    run_id = rt.trigger("steps", {"n": 1})
    token = _token_of(rt, run_id)
    first = runs.subscribe_to_run(run_id)
    snapshot = next(iter(list(_take(first, 1))))
    assert snapshot["metadata"]["token"] == token and first.offset is not None
    _complete(rt, token)
    rt.wait_status(run_id, "COMPLETED")
    again = list(runs.subscribe_to_run_sync(run_id, offset=first.offset))
    assert [r["status"] for r in again] == ["COMPLETED"]
    assert again[0]["output"] == {"done": 1}
    # the raw protocol: the offset after the last answer has nothing more
    shape = f"/realtime/v1/runs/{run_id}"
    start = rt.api("GET", shape, params={"offset": "-1", "log": "full"})
    offset, handle = start.headers["electric-offset"], start.headers["electric-handle"]
    live = rt.api("GET", shape, params={"offset": offset, "handle": handle, "live": "true",
                                        "cursor": ""})
    assert live.json() == [{"headers": {"control": "up-to-date"}}]
    assert live.headers["electric-offset"] == offset and "electric-cursor" in live.headers


def _take(subscription: Any, n: int) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        out = []
        async for row in subscription:
            out.append(row)
            if len(out) == n:
                break
        return out

    return asyncio.run(go())


def test_tag_and_batch_subscriptions_see_only_their_runs(rt: DaemonProcess) -> None:
    tagged = [rt.trigger("quick", {"i": i}, tags=["rt-tag", f"n{i}"]) for i in range(2)]
    rt.trigger("quick", {"other": True}, tags=["other"])
    batch = tasks.batch_trigger_sync("quick", [{"b": 1}, {"b": 2}])
    for run_id in [*tagged, *batch.runs]:
        rt.wait_status(run_id, "COMPLETED")
    seen: dict[str, dict[str, Any]] = {}
    for row in runs.subscribe_to_runs_with_tag_sync("rt-tag"):
        seen[row["id"]] = row
        if len(seen) == 2:
            break
    assert set(seen) == set(tagged) and all(r["status"] == "COMPLETED" for r in seen.values())
    in_batch: dict[str, dict[str, Any]] = {}
    for row in runs.subscribe_to_batch_sync(batch.batch_id):
        in_batch[row["id"]] = row
        if len(in_batch) == 2:
            break
    assert set(in_batch) == set(batch.runs)


def test_handle_result_and_logs(rt: DaemonProcess) -> None:
    handle = RunHandle(rt.trigger("streamer", {"n": 3}))
    result = handle.result_sync()
    assert result.ok and result.unwrap() == {"piped": 3}
    lines = list(handle.logs_sync())
    assert [line["message"] for line in lines] == ["streaming"]


def test_streams_are_read_in_order_live_and_after_a_restart(rt: DaemonProcess) -> None:
    run_id = rt.trigger("streamer", {"n": 50, "gate": True})
    got: list[Any] = []
    thread = _collect(streams.read_sync(run_id, "tokens"), got)
    wait_for(lambda: len(got) >= 51, 30, what="the chunks before the wait")
    assert thread.is_alive(), "the reader ended while the run still runs"
    _complete(rt, _token_of(rt, run_id))
    thread.join(30)
    assert not thread.is_alive()
    expected = [{"token": f"w{i}"} for i in range(50)] + ["tail", {"typed": True}, "after the wait"]
    assert got == expected
    assert list(streams.read_sync(run_id)) == ["plain text"]
    assert list(streams.read_sync(run_id, "legacy")) == [{"token": "w0"}, {"token": "w1"}]
    rt.stop()
    rt.start()
    configure(base_url=rt.url, secret_key=rt.key)
    assert list(streams.read_sync(run_id, "tokens", start_index=50)) == expected[50:]
    row = rt.api("GET", f"/realtime/v1/runs/{run_id}", params={"offset": "-1"}).json()[0]
    assert row["value"]["realtimeStreams"] == ["tokens", "default", "legacy"]


def test_the_electric_rows_are_what_the_official_client_parses(rt: DaemonProcess) -> None:
    run_id = rt.trigger("quick", {"a": 1}, tags=["x"])
    rt.wait_status(run_id, "COMPLETED")
    r = rt.api("GET", f"/realtime/v1/runs/{run_id}", params={"offset": "-1", "log": "full"})
    assert r.status_code == 200
    for header in ("electric-offset", "electric-handle", "electric-schema"):
        assert header in r.headers
    assert r.headers["access-control-allow-origin"] == "*"
    insert, control = r.json()
    assert control == {"headers": {"control": "up-to-date"}}
    row = insert["value"]
    assert insert["headers"] == {"operation": "insert"}
    assert row["status"] == "COMPLETED_SUCCESSFULLY" and row["friendlyId"] == run_id
    assert row["completedAt"] and not row["completedAt"].endswith("Z")
    assert json.loads(row["output"]) == {"a": 1} and row["outputType"] == "application/json"
    assert row["runTags"] == ["x"]


@pytest.mark.parametrize(("path", "params", "headers"), [
    ("/realtime/v1/runs/RUN", {"offset": "abc"}, {}),
    ("/realtime/v1/runs", {"createdAt": "yesterday"}, {}),
    ("/realtime/v1/runs", {"tags": 'a"b'}, {}),
    ("/realtime/v1/runs/RUN", {"offset": "-1", "format": "xml"}, {}),
    ("/realtime/v1/streams/RUN/bad key!", {}, {}),
    ("/realtime/v1/streams/RUN/tokens", {}, {"timeout-seconds": "0"}),
    ("/realtime/v1/streams/RUN/tokens", {}, {"last-event-id": "x"}),
])
def test_bad_realtime_input_is_a_400(rt: DaemonProcess, path: str, params: dict[str, str],
                                     headers: dict[str, str]) -> None:
    run_id = rt.trigger("quick", {})
    r = rt.api("GET", path.replace("RUN", run_id), params=params, headers=headers)
    assert r.status_code == 400, r.text
    assert "error" in r.json()


def test_unknown_runs_and_batches_are_404(rt: DaemonProcess) -> None:
    for path in ("/realtime/v1/runs/run_nope", "/realtime/v1/batches/batch_nope",
                 "/realtime/v1/streams/run_nope/tokens"):
        r = rt.api("GET", path, params={"offset": "-1"})
        assert r.status_code == 404, (path, r.text)
    assert rt.api("PUT", "/realtime/v1/streams/run_nope/self/k").status_code == 404


def test_a_public_token_reads_its_run_only(rt: DaemonProcess) -> None:
    mine, other = rt.trigger("quick", {}), rt.trigger("quick", {})
    claims = rt.api("POST", "/api/v1/auth/jwt/claims")
    assert claims.status_code == 200 and claims.json() == {"sub": "env_local", "pub": True}
    token = rt.api("POST", "/api/v1/tasks/quick/trigger", json={"payload": "{}"}) \
        .headers["x-trigger-jwt"]
    scoped_run = _jwt_run(token)
    with httpx.Client(base_url=rt.url, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.get(f"/realtime/v1/runs/{scoped_run}", params={"offset": "-1"}).status_code == 200
        assert c.get(f"/realtime/v1/runs/{mine}", params={"offset": "-1"}).status_code == 403
        assert c.get(f"/realtime/v1/runs/{other}", params={"offset": "-1"}).status_code == 403
        assert c.get(f"/realtime/v1/streams/{scoped_run}/k",
                     headers={"timeout-seconds": "1"}).status_code == 200
        assert c.get(f"/realtime/v1/streams/{other}/k").status_code == 403
        assert c.put(f"/realtime/v1/streams/{scoped_run}/self/k").status_code == 401


def _jwt_run(token: str) -> str:
    import base64

    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    scope = next(s for s in claims["scopes"] if s.startswith("read:runs:"))
    return str(scope.removeprefix("read:runs:"))


def test_cli_runs_stream_prints_text_as_text_and_follows(rt: DaemonProcess) -> None:
    from .test_cli_messages import cli

    done = rt.trigger("streamer", {"n": 2})
    rt.wait_status(done, "COMPLETED")
    shown = cli(rt, "runs", "stream", done, "tokens")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == '{"token": "w0"}\n{"token": "w1"}\ntail\n{"typed": true}\n'
    several = cli(rt, "runs", "stream", done)
    assert several.returncode == 1 and "name one" in several.stderr
    assert "Traceback" not in several.stderr
    live = rt.trigger("streamer", {"n": 1, "gate": True})
    proc = subprocess.Popen([sys.executable, "-m", "trigger_local", "runs", "stream", live,
                             "tokens", "--follow"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "TRIGGER_LOCAL_HOME": str(rt.home)})
    try:
        _complete(rt, _token_of(rt, live))
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert out == '{"token": "w0"}\ntail\n{"typed": true}\nafter the wait\n'


async def test_the_dashboard_shows_a_runs_streams_live(rt: DaemonProcess) -> None:
    from textual.widgets import Static

    from trigger_local.sdk.client import ApiClient
    from tui.app import Dashboard
    from tui.detail import RunDetail

    from .test_dashboard import until

    run_id = rt.trigger("streamer", {"n": 3, "gate": True})
    token = await asyncio.to_thread(_token_of, rt, run_id)
    app = Dashboard(ApiClient(rt.url, rt.key))
    async with app.run_test(size=(160, 50)) as pilot:
        app.push_screen(RunDetail(app.api, run_id))
        detail = await until(pilot, lambda: isinstance(app.screen, RunDetail)
                             and app.screen.trace_ready and app.screen, "the run's detail")
        pane = detail.query_one("#run-streams-text", Static)
        await until(pilot, lambda: "tail" in str(pane.render()) and "legacy" in str(pane.render()),
                    "the streams written before the wait")
        shown = str(pane.render())
        assert "stream tokens" in shown and '{"token": "w2"}' in shown
        assert "stream default" in shown and "plain text" in shown
        await asyncio.to_thread(_complete, rt, token)
        await until(pilot, lambda: "after the wait" in str(pane.render()),
                    "a chunk written after the wait, live")


def test_a_sync_task_streams_from_its_thread(rt: DaemonProcess) -> None:
    run_id = rt.trigger("sync-streamer", {})
    assert rt.wait_status(run_id, "COMPLETED")["output"] == ["a", "b"]
    assert list(streams.read_sync(run_id, "sync")) == [0, 1, 2]
    assert list(streams.read_sync(run_id, "sync-piped")) == ["a", "b"]


def test_the_v1_writer_protocol(rt: DaemonProcess) -> None:
    run_id = rt.trigger("steps", {"n": 0})
    token = _token_of(rt, run_id)
    base = f"/realtime/v1/streams/{run_id}/self/ingest"
    created = rt.api("PUT", base)
    assert created.status_code == 202 and created.json() == {"version": "v1"}

    def body(lines: list[str]) -> Iterator[bytes]:
        for line in lines:
            yield (line + "\n").encode()

    first = rt.api("POST", base, content=body(['{"t":"a"}', '"plain"', "42"]),
                   headers={"x-client-id": "c1", "x-resume-from-chunk": "0"})
    assert first.status_code == 200, first.text
    probe = rt.api("HEAD", base, headers={"x-client-id": "c1"})
    assert probe.headers["x-last-chunk-index"] == "2"
    assert rt.api("HEAD", base, headers={"x-client-id": "c9"}).headers["x-last-chunk-index"] == "-1"
    rt.api("POST", base, content=body(['{"t":"b"}']),
           headers={"x-client-id": "c1", "x-resume-from-chunk": "3"}).raise_for_status()
    appended = rt.api("POST", base + "/append", content=b"appended text")
    assert appended.json() == {"ok": True}
    assert rt.api("HEAD", base, headers={"x-client-id": "c1"}).headers["x-last-chunk-index"] == "3"
    _complete(rt, token)
    rt.wait_status(run_id, "COMPLETED")
    sse = rt.api("GET", f"/realtime/v1/streams/{run_id}/ingest", headers={"last-event-id": "1"})
    assert sse.headers["content-type"].startswith("text/event-stream")
    events = [e for e in sse.text.split("\n\n") if e.startswith("id:")]
    assert events == ["id: 2\ndata: 42", 'id: 3\ndata: {"t":"b"}', 'id: 4\ndata: "appended text"']
    latest = rt.api("GET", f"/realtime/v1/streams/{run_id}/ingest",
                    headers={"x-trigger-stream-start": "latest"})
    assert "id:" not in latest.text  # from the tail on: the run has finished, nothing comes
    late = rt.api("PUT", base)
    assert late.status_code == 422 and "finished" in late.json()["error"]
    assert rt.api("PUT", f"/realtime/v1/streams/{run_id}/elsewhere/k").status_code == 400


def test_a_public_token_signed_with_a_project_key_reads_that_projects_runs(
        rt: DaemonProcess) -> None:
    import time

    from trigger_local.api.auth import sign_jwt
    from trigger_local.tokens import project_key

    run_id = rt.trigger("quick", {})
    rt.wait_status(run_id, "COMPLETED")
    mine = sign_jwt(project_key(rt.key, "proj_test"), ["read:runs"], time.time())
    theirs = sign_jwt(project_key(rt.key, "proj_other"), ["read:runs"], time.time())
    forged = sign_jwt("not-a-key", ["read:runs"], time.time())
    shape = f"/realtime/v1/runs/{run_id}"
    with httpx.Client(base_url=rt.url) as c:
        ok = c.get(shape, params={"offset": "-1"}, headers={"Authorization": f"Bearer {mine}"})
        assert ok.status_code == 200 and ok.json()[0]["value"]["friendlyId"] == run_id
        other = c.get(shape, params={"offset": "-1"},
                      headers={"Authorization": f"Bearer {theirs}"})
        assert other.status_code in (401, 404)
        bad = c.get(shape, params={"offset": "-1"}, headers={"Authorization": f"Bearer {forged}"})
        assert bad.status_code == 401
