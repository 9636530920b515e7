"""A log line whose message holds a character Python's `str.splitlines` ends a line at but JSON
leaves as it is (U+2028, U+2029, NEL U+0085): the spool (log_spool.py, written with
`ensure_ascii=False`) holds it on one line, and the replay must read it as one. Read as two
broken halves, it was left out and every later line of the spool shifted by one: the replay
stored the wrong lines (the first one the daemon did not hold was lost), and a burst on its way
when the process died, served after the replay, skipped lines by its `first` that the replay
had not stored. Both stores, the daemon's app over its HTTP API, a spool written by the
runtime's own writer."""

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

#: the first line holds one of them (each test runs with each)
SEPARATORS = pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])


def _messages_logged(separator: str) -> list[str]:
    return [f"one{separator}two", "three", "four", "five", "six", "seven"]


def _spool(path: Path, run_id: str, messages: list[str]) -> Path:
    writer = SpoolWriter(str(path))
    writer.begin(run_id, 1)
    for message in messages:
        writer.write({"at": T0, "level": "info", "message": message, "kind": "log"})
    return path


async def _burst(api: httpx.AsyncClient, assignment: dict[str, Any], messages: list[str],
                 first: int) -> None:
    entries = [{"at": T0, "level": "info", "message": m, "kind": "log"}
               for m in messages[first:first + 3]]
    answer = await api.post(f"/engine/v1/runs/{assignment['run_id']}/logs", headers=as_run(
        assignment), json={"attempt": 1, "entries": entries, "first": first})
    assert answer.status_code == 200, answer.text


async def _messages(api: httpx.AsyncClient, run_id: str) -> list[str]:
    logs = (await api.get(f"/api/v1/runs/{run_id}/logs")).json()["data"]
    return [e["message"] for e in logs]


@SEPARATORS
async def test_the_replay_stores_the_lines_after_one_holding_a_line_separator(
        api: httpx.AsyncClient, indexed: Version, engine: Engine, tmp_path: Path,
        separator: str) -> None:
    a, logged = await start(api), _messages_logged(separator)
    spool = _spool(tmp_path / "worker.spool", a["run_id"], logged)
    await _burst(api, a, logged, 0)  # the process dies with its last three lines not sent
    await assignments.store_unsent(engine, spool, a["run_id"], 1)
    assert await _messages(api, a["run_id"]) == logged


@SEPARATORS
async def test_a_burst_on_its_way_loses_no_line_after_a_replay_past_a_separator(
        api: httpx.AsyncClient, indexed: Version, engine: Engine, tmp_path: Path,
        separator: str) -> None:
    a, logged = await start(api), _messages_logged(separator)
    spool = _spool(tmp_path / "worker.spool", a["run_id"], logged)
    await _burst(api, a, logged, 0)
    # the process dies while its second burst is on its way: the executor replays the spool...
    await assignments.store_unsent(engine, spool, a["run_id"], 1)
    await _burst(api, a, logged, 3)  # ...and then the burst is served
    assert await _messages(api, a["run_id"]) == logged
