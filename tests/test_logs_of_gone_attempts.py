"""Log lines for an attempt that does not exist, or of a run that has ended, are refused and
nothing of them is stored: 404 and 409 over HTTP, the same statuses on the channel; the
runtime takes either as "the attempt is gone" (AttemptGone), the way it takes a stale token's
409. The daemon is a real HTTP server on a free port (tests/test_worker_channel.py's
`served`), the runtime's RunState its client."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import InProcessServices
from tests.test_worker_channel import Served, served
from trigger_local.errors import AttemptGone
from trigger_local.runtime.channel import Channel
from trigger_local.sdk.context import Context, RunState
from trigger_local.sdk.worker_client import WorkerClient

__all__ = ["served"]  # the fixture, used by name

ENTRIES = [{"message": "late", "at": 1.0}]


async def _assigned(served: Served) -> dict:
    await served.trigger()
    channel = await served.channel()
    try:
        assignment: dict = (await channel.poll(0))["assignment"]
    finally:
        await channel.close()
    return assignment


async def _messages(services: InProcessServices, run_id: str) -> list[str]:
    return [e.message for e in await services.engine.queries.logs.for_run(run_id, 0, 100)]


async def test_the_log_route_refuses_a_made_up_attempt_and_an_ended_run(
        served: Served, services: InProcessServices) -> None:
    a = await _assigned(served)
    rid, token = a["run_id"], {"Authorization": f"Bearer {a['run_token']}"}
    for attempt in (2, 99):
        r = await served.api.post(f"/engine/v1/runs/{rid}/logs",
                                  json={"attempt": attempt, "entries": ENTRIES}, headers=token)
        assert r.status_code == 404, r.text
        assert f"no attempt {attempt}" in r.json()["error"]
    r = await served.api.post(f"/engine/v1/runs/{rid}/logs",
                              json={"attempt": 1, "entries": [{"message": "kept", "at": 1.0}]},
                              headers=token)
    assert r.status_code == 200, r.text
    assert (await served.api.post(f"/api/v2/runs/{rid}/cancel")).status_code == 200
    for headers in (token, {}):  # the attempt's token, and the daemon's key
        r = await served.api.post(f"/engine/v1/runs/{rid}/logs",
                                  json={"attempt": 1, "entries": ENTRIES}, headers=headers)
        assert r.status_code == 409, r.text
        assert "has ended (CANCELED)" in r.json()["error"]
    assert await _messages(services, rid) == ["kept"]


@pytest.mark.parametrize("over_channel", [False, True])
async def test_the_runtime_takes_a_refused_burst_as_its_attempt_gone(
        served: Served, services: InProcessServices, over_channel: bool) -> None:
    a = await _assigned(served)
    rid = a["run_id"]
    channel = await served.channel() if over_channel else None
    client = WorkerClient(served.url, orphan_timeout=10)
    client.channel = channel
    try:
        for attempt in (7, 1):  # 7: no such attempt (404); 1, once canceled: ended (409)
            if attempt == 1:
                assert (await served.api.post(f"/api/v2/runs/{rid}/cancel")).status_code == 200
            state = RunState(run_id=rid, attempt=attempt, token=a["run_token"], client=client,
                             loop=asyncio.get_running_loop(),
                             ctx=Context.from_assignment({"run_id": rid, "task_id": "hello"}))
            state.add_log({"message": "late", "at": 1.0})
            with pytest.raises(AttemptGone):
                await state.logs.flush()
            state.add_log({"message": "later", "at": 2.0})
            await state.logs._background()  # a background send: marks the run gone, no trace
            assert state.gone
        assert await _messages(services, rid) == []
    finally:
        if isinstance(channel, Channel):
            await channel.close()
        await client.aclose()
