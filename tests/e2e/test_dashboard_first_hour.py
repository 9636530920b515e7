"""What a new user meets first in the dashboard, driven by its pilot against a real daemon:
keys that act only where they are shown, a question before a run is canceled, a blocked list
that follows cancels, durations that move while a run waits, and an 80×24 terminal where
nothing is cut."""

from __future__ import annotations

import time
from typing import Any

from textual.widgets import DataTable, RichLog, Static, Tree

from trigger_local.clock import FakeClock
from trigger_local.display import MISSING
from trigger_local.sdk.client import ApiClient
from tui.app import Dashboard
from tui.confirm import ConfirmDialog
from tui.detail import RunDetail
from tui.trace import TraceNode

from .conftest import DaemonProcess
from .test_dashboard import cell, dashboard, until


def selected_row(table: DataTable[Any]) -> str:
    return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)


async def open_detail(pilot: Any, app: Dashboard, run_id: str) -> tuple[RunDetail, Tree[TraceNode]]:
    app.open_run(run_id)
    detail: RunDetail = await until(pilot, lambda: isinstance(app.screen, RunDetail)
                                    and app.screen.trace_ready and app.screen, "the run's detail")
    return detail, detail.query_one("#trace-tree", Tree)


async def test_o_opens_the_selected_run_only_on_the_runs_tab(ready: DaemonProcess) -> None:
    run_id = ready.trigger("hello", {})
    app = dashboard(ready)
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one("#runs-table", DataTable)
        await until(pilot, lambda: cell(table, run_id, "status"), "the run in the table")
        for tab in ("3", "2", "4"):  # queues, waitpoints, schedules: `o` is not theirs
            await pilot.press(tab, "o")
            assert not isinstance(app.screen, RunDetail), f"o on tab {tab} opened a run"
        await pilot.press("1", "o")
        await until(pilot, lambda: isinstance(app.screen, RunDetail)
                    and app.screen.run_id == run_id, "o on the Runs tab opening the run")


async def test_cancel_asks_first_and_only_yes_cancels(ready: DaemonProcess) -> None:
    in_table = ready.trigger("token-waiter", {})
    in_detail = ready.trigger("token-waiter", {})
    for run_id in (in_table, in_detail):
        ready.wait_status(run_id, "WAITING")
    app = dashboard(ready)
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one("#runs-table", DataTable)
        await until(pilot, lambda: cell(table, in_table, "status") == "WAITING", "the waiting run")
        table.move_cursor(row=table.get_row_index(in_table))
        for no in ("n", "escape"):
            await pilot.press("c")
            dialog = await until(pilot, lambda: isinstance(app.screen, ConfirmDialog)
                                 and app.screen, "the question")
            assert in_table in str(dialog.query_one("#confirm-question").render())
            await pilot.press(no)
            await until(pilot, lambda: not isinstance(app.screen, ConfirmDialog),
                        "the question answered")
            assert ready.run(in_table)["status"] == "WAITING", f"{no} canceled the run"
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the question")
        await pilot.press("y")
        assert ready.wait_status(in_table, "CANCELED")["status"] == "CANCELED"
        await until(pilot, lambda: cell(table, in_table, "status") == "CANCELED",
                    "the table showing it")
        # the detail screen asks the same question
        await open_detail(pilot, app, in_detail)
        await pilot.press("c")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog),
                    "the question on the detail screen")
        await pilot.press("y")
        assert ready.wait_status(in_detail, "CANCELED")["status"] == "CANCELED"


async def test_a_canceled_run_leaves_its_tokens_blocked_list(ready: DaemonProcess) -> None:
    run_id = ready.trigger("token-waiter", {})
    ready.wait_status(run_id, "WAITING")
    app = dashboard(ready)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("2")
        table = app.query_one("#tokens-table", DataTable)
        below = app.query_one("#token-url", Static)
        await until(pilot, lambda: f"blocked: {run_id}" in str(below.render()),
                    "the token blocking the run")
        token_id = selected_row(table)
        ready.api("POST", f"/api/v2/runs/{run_id}/cancel").raise_for_status()
        await until(pilot, lambda: "no run waits on it" in str(below.render()),
                    "the run gone from the token")
        assert (cell(table, token_id, "runs") == MISSING
                and "WAITING" in cell(table, token_id, "status"))
        token = ready.api("GET", f"/api/v1/waitpoints/tokens/{token_id}").json()
        assert token["status"] == "WAITING" and token["blockedRunIds"] == []


async def test_a_waiting_runs_duration_moves_on(ready: DaemonProcess) -> None:
    run_id = ready.trigger("token-waiter", {})
    ready.wait_status(run_id, "WAITING")
    clock = FakeClock(time.time())
    app = Dashboard(ApiClient(ready.url, ready.key), clock=clock)
    async with app.run_test(size=(160, 40)) as pilot:
        table = app.query_one("#runs-table", DataTable)
        await until(pilot, lambda: cell(table, run_id, "status") == "WAITING", "the waiting run")
        assert not cell(table, run_id, "duration").startswith("1m")
        clock.advance(90)
        await until(pilot, lambda: cell(table, run_id, "duration").startswith("1m"),
                    "the duration at 1m…")
        detail, tree = await open_detail(pilot, app, run_id)
        assert "WAITING · 1m" in str(tree.root.label)
        clock.advance(60)
        await until(pilot, lambda: "WAITING · 2m" in str(tree.root.label),
                    "the run's duration at 2m…")
        wait_line = next(line for line in detail.lines if line.data.kind == "wait")
        assert "waiting · 2m" in str(wait_line.label) and str(wait_line.label).endswith("…")


def fits(widget: Any) -> bool:
    """Nothing in it needs a horizontal scroll."""
    return bool(widget.virtual_size.width <= widget.scrollable_content_region.width)


async def test_at_80x24_trace_labels_log_lines_and_token_times_fit(ready: DaemonProcess) -> None:
    parent_id = ready.trigger("parent", {"n": 2})
    ready.wait_status(parent_id)
    waiter_id = ready.trigger("token-waiter", {})
    ready.wait_status(waiter_id, "WAITING")
    chatty_id = ready.trigger("hello", {"name": "a name long enough to wrap " * 6})
    ready.wait_status(chatty_id)
    app = dashboard(ready)
    async with app.run_test(size=(80, 24)) as pilot:
        for run_id in (parent_id, waiter_id):
            detail, tree = await open_detail(pilot, app, run_id)
            await until(pilot, lambda t=tree: t.root.children and fits(t),
                        f"{run_id}'s trace without a cut")
            labels = [str(line.label) for line in detail.lines]
            assert all("run run_" not in label for label in labels), labels
            await pilot.press("escape")
        detail, _ = await open_detail(pilot, app, chatty_id)
        log = detail.query_one("#run-logs", RichLog)
        await until(pilot, lambda: "wrap" in "".join(line.text for line in log.lines),
                    "the long log line")
        assert fits(log) and len(log.lines) > 1
        await pilot.press("escape", "2")
        table = app.query_one("#tokens-table", DataTable)
        await until(pilot, lambda: table.row_count, "the token")
        right = 0
        for column in table.ordered_columns:
            right += column.get_render_width(table)
            if column.key.value == "timeout":
                break
        assert right <= table.scrollable_content_region.width, "created and timeout are cut"
