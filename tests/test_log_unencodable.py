"""A log line whose attributes JSON cannot hold (a dict keyed by tuples, a structure that holds
itself) is stored with its attributes said as text, and costs no other line: it raised out of
`logger.info` in a process with a spool (the spool's write), after it was buffered, so the
spool lacked a line the bursts numbered (a replay then shifted, and a burst on its way lost
lines by its `first`); and cutting the buffer into bursts raised for it, which dropped every
line buffered with it. The daemon is a real HTTP server on a free port
(tests/test_worker_channel.py's `served`), the runtime's RunState its client with the
runtime's own spool writer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import InProcessServices
from tests.test_worker_channel import Served, served
from trigger_local.log_spool import SpoolWriter, unsent
from trigger_local.sdk.context import Context, RunState, enter_run, exit_run
from trigger_local.sdk.logger import logger
from trigger_local.sdk.worker_client import WorkerClient

__all__ = ["served"]  # the fixture, used by name


def _loop() -> list[Any]:
    itself: list[Any] = []
    itself.append(itself)
    return itself


@pytest.mark.parametrize("spooled", [True, False])
@pytest.mark.parametrize("bad", [{(1, 2): "tuple key"}, _loop()], ids=["tuple-key", "cycle"])
async def test_a_line_json_cannot_hold_is_stored_and_costs_no_other(
        served: Served, services: InProcessServices, tmp_path: Path, spooled: bool,
        bad: Any) -> None:
    await served.trigger()
    channel = await served.channel()
    try:
        a: dict[str, Any] = (await channel.poll(0))["assignment"]
    finally:
        await channel.close()
    path = tmp_path / "worker.spool"
    client = WorkerClient(served.url, orphan_timeout=10)
    state = RunState(run_id=a["run_id"], attempt=a["attempt"], token=a["run_token"],
                     client=client, loop=asyncio.get_running_loop(),
                     ctx=Context.from_assignment(a),
                     spool=SpoolWriter(str(path)) if spooled else None)
    token = enter_run(state)
    try:
        logger.info("one")
        logger.info("two", data=bad)  # neither raises nor takes the others with it
        logger.info("three")
        await state.logs.flush()
    finally:
        exit_run(token)
        await client.aclose()
    stored = await services.engine.queries.logs.for_run(a["run_id"], 0, 100)
    assert [e.message for e in stored] == ["one", "two", "three"]
    assert "data" in str(stored[1].attributes)  # said as text
    if spooled:  # a line for each, as the bursts number them
        assert [e["message"] for e in unsent(path, a["run_id"], a["attempt"], 0)] == \
            ["one", "two", "three"]
