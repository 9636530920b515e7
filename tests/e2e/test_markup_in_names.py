"""Text a user wrote (run tags, a queue name, token tags, a task's error) is shown as it is by
the command line and the dashboard, never read as Rich markup: a run tagged `[/]` made
`runs ls` and the dashboard fail with a MarkupError for every user, and `[red]z` lost its
brackets. Against a real daemon."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from textual.widgets import DataTable

from trigger_local.sdk.client import ApiClient
from tui.app import Dashboard

from .conftest import DaemonProcess
from .test_dashboard import cell, until

TAGS = ["[/]", "[red]z"]
QUEUE = "[/]q"


def _cli(d: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    env.update({"TRIGGER_LOCAL_HOME": str(d.home), "COLUMNS": "200"})
    return subprocess.run([sys.executable, "-m", "trigger_local", *args], capture_output=True,
                          text=True, env=env, timeout=90)


def _marked(d: DaemonProcess) -> tuple[str, str]:
    run_id = d.trigger("hello", {}, tags=TAGS, queue={"name": QUEUE})
    d.wait_status(run_id, "COMPLETED")
    token = d.api("POST", "/api/v1/waitpoints/tokens", json={"tags": ["[/]"]})
    assert token.status_code == 200, token.text
    return run_id, token.json()["id"]


def test_the_cli_shows_bracketed_names_as_written(ready: DaemonProcess) -> None:
    run_id, token_id = _marked(ready)
    for args, shown in ((["runs", "ls"], "[/], [red]z"), (["tokens", "ls"], token_id),
                        (["tokens", "show", token_id], "[/]"), (["queues", "ls"], QUEUE),
                        (["queues", "pause", QUEUE], f"Paused {QUEUE}"),
                        (["queues", "show", QUEUE], QUEUE),
                        (["queues", "resume", QUEUE], f"Resumed {QUEUE}")):
        result = _cli(ready, *args)
        assert result.returncode == 0, (args, result.stderr[-2000:])
        assert shown in result.stdout + result.stderr, (args, result.stdout, result.stderr)
    assert "[/]" in _cli(ready, "tokens", "ls").stdout


def _shows(table: DataTable[Any], text: str) -> bool:
    return any(str(value) == text for key in list(table.rows) for value in table.get_row(key))


async def test_the_dashboard_shows_bracketed_names_as_written(ready: DaemonProcess) -> None:
    run_id, token_id = _marked(ready)
    app = Dashboard(ApiClient(ready.url, ready.key))
    async with app.run_test(size=(160, 40)) as pilot:
        runs = app.query_one("#runs-table", DataTable)
        await until(pilot, lambda: cell(runs, run_id, "tags") == ",".join(TAGS),
                    "the tagged run in the runs table")
        for tab, table_id, text in (("2", "#tokens-table", "[/]"), ("3", "#queues-table", QUEUE)):
            await pilot.press(tab)
            table: DataTable[Any] = app.query_one(table_id, DataTable)
            await until(pilot, lambda t=table, x=text: _shows(t, x), f"{text!r} on tab {tab}")
        await pilot.press("1")
        await pilot.pause(0.2)
        assert app.is_running
