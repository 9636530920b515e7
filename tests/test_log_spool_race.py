"""A task process that dies with a burst of log lines on its way: the executor stores the lines
of its spool the daemon does not hold (executors/assignments.py `store_unsent`), and the burst,
served before or after that, must not store them a second time. Every burst says where it
starts among its attempt's lines (`first`), so the daemon skips the lines it holds from there
on — not only for a burst sent again, as before, when the replay and the burst both stored
them. Both stores (a real SQLite file, a real PostgreSQL cluster), the daemon's app over its
HTTP API, a spool written by the runtime's own writer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import T0
from tests.test_api_worker import as_run, start
from trigger_local.engine import Engine
from trigger_local.executors import assignments
from trigger_local.log_spool import SpoolWriter
from trigger_local.store.models import Version

LINES = [{"at": T0, "level": "info", "message": f"line {n}", "kind": "log"} for n in range(6)]


def _spool(path: Path, run_id: str) -> Path:
    writer = SpoolWriter(str(path))
    writer.begin(run_id, 1)
    for line in LINES:
        writer.write(line)
    return path


async def _burst(api: httpx.AsyncClient, assignment: dict[str, Any], first: int) -> None:
    answer = await api.post(f"/engine/v1/runs/{assignment['run_id']}/logs", headers=as_run(
        assignment), json={"attempt": 1, "entries": LINES[first:first + 3], "first": first})
    assert answer.status_code == 200, answer.text


async def _messages(api: httpx.AsyncClient, run_id: str) -> list[str]:
    logs = (await api.get(f"/api/v1/runs/{run_id}/logs")).json()["data"]
    return [e["message"] for e in logs]


async def test_a_burst_served_after_the_spool_was_replayed_is_stored_once(
        api: httpx.AsyncClient, indexed: Version, engine: Engine, tmp_path: Path) -> None:
    a = await start(api)
    spool = _spool(tmp_path / "worker.spool", a["run_id"])
    await _burst(api, a, 0)
    # the process dies while its second burst is on its way: the executor replays the spool...
    await assignments.store_unsent(engine, spool, a["run_id"], 1)
    await _burst(api, a, 3)  # ...and then the burst is served
    assert await _messages(api, a["run_id"]) == [line["message"] for line in LINES]


async def test_a_burst_stored_while_the_replay_counts_is_stored_once(
        api: httpx.AsyncClient, indexed: Version, engine: Engine, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    a = await start(api)
    spool = _spool(tmp_path / "worker.spool", a["run_id"])
    await _burst(api, a, 0)
    counted = assignments.lines_received

    async def count_then_burst(*args: Any) -> int:
        held = await counted(*args)
        await _burst(api, a, 3)  # served between the replay's count and its own store
        return held

    monkeypatch.setattr(assignments, "lines_received", count_then_burst)
    await assignments.store_unsent(engine, spool, a["run_id"], 1)
    assert await _messages(api, a["run_id"]) == [line["message"] for line in LINES]
