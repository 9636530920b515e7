"""The engine's part of realtime streams (engine/streams.py): a stream is created once with a
durable `run.stream` event, chunks wake readers with a notice and no event row, a finished
run takes no more chunks, and streams past the retention setting go when a new one is made."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.engine_support import open_engine
from trigger_local.clock import FakeClock
from trigger_local.engine import AttemptOutcome, Engine, TriggerRequest
from trigger_local.engine.events import Event, RunStreamCreated, StreamAppended
from trigger_local.errors import NotFoundError, ValidationError
from trigger_local.store.models import TaskDef


@pytest.fixture
async def engine(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Engine]:
    eng = await open_engine(tmp_path, clock, tasks=[TaskDef(task_id="hello", queue="task/hello")],
                            stream_retention_s=3600)
    yield eng
    await eng.store.close()


async def _run(engine: Engine) -> str:
    return (await engine.trigger(TriggerRequest(task_id="hello"))).run.id


async def test_a_stream_is_created_once_and_chunks_are_notices(engine: Engine) -> None:
    seen: list[Event] = []
    engine.hub.subscribe(Event, seen.append)
    run_id = await _run(engine)
    before = await engine.queries.events.last_seq()
    assert await engine.append_stream(run_id, "tokens", ['"a"', '"b"']) == 2
    assert await engine.append_stream(run_id, "tokens", ['"c"']) == 3
    assert await engine.append_stream(run_id, "tokens", []) == 3
    created = [e for e in seen if isinstance(e, RunStreamCreated)]
    appended = [e for e in seen if isinstance(e, StreamAppended)]
    assert [(e.run_id, e.key) for e in created] == [(run_id, "tokens")]
    assert [e.length for e in appended] == [2, 3]
    rows = await engine.queries.events.after(before)
    assert [(r.type, r.data) for r in rows] == [("run.stream", {"run_id": run_id,
                                                                "key": "tokens"})]


async def test_unknown_and_finished_runs_take_no_chunks(engine: Engine) -> None:
    with pytest.raises(NotFoundError):
        await engine.append_stream("run_nope", "k", ['"a"'])
    run_id = await _run(engine)
    [run] = await engine.dequeue(1)
    started = await engine.start_attempt(run, "worker_1", 1)
    assert started is not None
    await engine.finish_attempt(run_id, 1, AttemptOutcome(ok=True, output="null",
                                                          output_type="application/json"))
    with pytest.raises(ValidationError, match="has finished"):
        await engine.append_stream(run_id, "k", ['"late"'])
    assert await engine.queries.streams.keys(run_id) == []


async def test_streams_past_retention_go_when_a_new_one_is_made(engine: Engine,
                                                              clock: FakeClock) -> None:
    old, new = await _run(engine), await _run(engine)
    await engine.append_stream(old, "k", ['"old"'])
    clock.advance(3000)
    await engine.append_stream(new, "k", ['"kept"'])
    assert await engine.queries.streams.keys(old) == ["k"]  # 3000 s: within the hour
    clock.advance(1000)
    await engine.append_stream(new, "other", [])
    assert await engine.queries.streams.keys(old) == []
    assert await engine.queries.streams.keys(new) == ["k", "other"]
