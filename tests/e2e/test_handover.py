"""A finished run's slot goes to the next run in the finishing commit (engine/handover.py,
executors/handover.py) against a real daemon and real shared task processes: a batch of 500
completes, its runs mostly started by hand-overs, the process's frames of one moment sent as one
WebSocket message, and the daemon's answers to a commit's completions with the poll answer that
carries the runs it handed over; a queue limit holds on that path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .conftest import DaemonProcess, wait_for

ACTIVE = ("PENDING_VERSION", "DELAYED", "QUEUED", "DEQUEUED", "EXECUTING", "WAITING")


def _status(daemon: DaemonProcess) -> dict[str, Any]:
    r = daemon.api("GET", "/api/v1/local/status")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _start(tmp_path: Path, project: Path) -> DaemonProcess:
    home = tmp_path / "home"
    daemon = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                      "TRIGGER_LOCAL_CONCURRENCY": "4"})
    daemon.start()
    daemon.register(project)
    return daemon


def test_a_batch_of_500_completes_its_slots_handed_over(tmp_path: Path, project: Path) -> None:
    daemon = _start(tmp_path, project)
    try:
        items = [{"task": "hello", "payload": json.dumps({"name": str(i)}),
                  "options": {"payloadType": "application/json"}} for i in range(500)]
        r = daemon.api("POST", "/api/v1/tasks/batch", json={"items": items})
        assert r.status_code == 200, r.text

        def idle() -> bool:
            runs = _status(daemon)["runs"]
            return not any(runs.get(s, 0) for s in ACTIVE)

        wait_for(idle, 240, interval=0.2, what="the batch of 500 to finish")
        status = _status(daemon)
        assert status["runs"].get("COMPLETED") == 500, status["runs"]
        # the runs after the first few took a finished run's slot in its commit
        assert status["executor"]["handed_over"] >= 100, status["executor"]
        frames = status["channelFrames"]
        # up: a process's poll left with what the runs its answer started sent in their first
        # step (trigger_local/outbox.py) — a `hello` run's first step reaches its logs call, so
        # every logs frame joined a poll's message: at most one message per poll or
        # completions frame. A poll and a completions frame go together only when the
        # process's runs are out of step, which is timing: a loaded CI run kept the four in
        # step — each poll answer started four runs, their completions left in one frame
        # (125 polls, 125 completions frames, 250 messages, none holding both).
        assert frames["call:logs"] == 500, frames
        assert 0 < frames["messages"] <= frames["poll"] + frames["completions"], frames
        # and down: a completions frame's answer waited for the poll answer carrying the
        # assignments its commit handed over, and left with it (api/channel.py `_hold`)
        sent = status["channelSent"]
        assert 0 < sent["messages"] < sent["frames"], sent
    finally:
        daemon.close()


def test_a_queue_limit_holds_when_slots_are_handed_over(tmp_path: Path,
                                                        project: Path) -> None:
    """`serial` (queue `one-at-a-time`, limit 1) with eight runs queued and room to spare:
    never two at once, each started by the commit that finished the one before."""
    daemon = _start(tmp_path, project)
    try:
        ids = [daemon.trigger("serial") for _ in range(8)]
        runs = [daemon.wait_status(i, timeout=120) for i in ids]
        assert [r["status"] for r in runs] == ["COMPLETED"] * 8
        spans = sorted((r["output"]["start"], r["output"]["end"]) for r in runs)
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end, spans  # one at a time
        assert _status(daemon)["executor"]["handed_over"] >= 1
    finally:
        daemon.close()
