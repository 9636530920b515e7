"""The Textual dashboard driven by its pilot against a real daemon with real runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual import events
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Label, RichLog, Static, Tree

from trigger_local.display import MISSING
from trigger_local.sdk.client import ApiClient, SyncApiClient
from tui.app import Dashboard
from tui.common import DaemonHeader
from tui.detail import RunDetail
from tui.trace import TraceNode
from tui.waitpoints import JsonDialog

from .conftest import DaemonProcess


async def until(pilot: Pilot[Any], predicate: Callable[[], Any], what: str,
                timeout: float = 30) -> Any:
    """Let the app run until `predicate()` is truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)
    return value


def cell(table: DataTable[Any], row: str, column: str) -> str:
    try:
        return str(table.get_cell(row, column))
    except Exception:  # noqa: BLE001 - the row is not there (yet)
        return ""


def dashboard(d: DaemonProcess) -> Dashboard:
    return Dashboard(ApiClient(d.url, d.key))


def queued_behind_a_pause(d: DaemonProcess, n: int) -> None:
    """`n` runs of hello, queued: its queue paused (it exists once a run used it: one ran)."""
    d.wait_status(d.trigger("hello", {}))
    d.api("POST", "/api/v1/queues/hello/pause",
          json={"type": "task", "action": "pause"}).raise_for_status()
    client = SyncApiClient(d.url, d.key)
    client.batch_trigger([{"task": "hello", "payload": "{}"} for _ in range(n)])
    client.close()


async def test_runs_table_updates_when_a_run_finishes(ready: DaemonProcess) -> None:
    app = dashboard(ready)
    async with app.run_test(size=(160, 40)) as pilot:
        header = app.query_one(DaemonHeader)
        await until(pilot, lambda: header.live and header.status_info, "the header to go live")
        assert ready.url in str(header.render()) and "executor" in str(header.render())
        table = app.query_one("#runs-table", DataTable)
        run_id = ready.trigger("sleeper", {"seconds": 1})
        # under load the row may first be read already finished: any status shows it arrived
        await until(pilot, lambda: cell(table, run_id, "status"), "the new run in the table")
        await until(pilot, lambda: cell(table, run_id, "status") == "COMPLETED",
                    "COMPLETED in the table")
        assert (cell(table, run_id, "task") == "sleeper"
                and cell(table, run_id, "duration") != MISSING)
        await pilot.press("slash")
        await pilot.press(*"task:hello")
        await pilot.press("enter")
        await until(pilot, lambda: table.row_count == 0, "the filter to hide the sleeper run")


async def test_token_lists_its_blocked_run_and_completing_it_from_the_dialog_finishes_the_run(
        ready: DaemonProcess) -> None:
    run_id = ready.trigger("token-waiter", {})
    ready.wait_status(run_id, "WAITING")
    app = dashboard(ready)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("2")
        table = app.query_one("#tokens-table", DataTable)
        await until(pilot, lambda: table.row_count and "WAITING" in cell(table,
                                                                         table.coordinate_to_cell_key(
            table.cursor_coordinate).row_key.value, "status"), "a waiting token")
        token_id = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        # the runs blocked on the token: in its row and, all of them, under the table
        assert cell(table, token_id, "runs") == run_id
        below = str(app.query_one("#token-url", Static).render())
        assert f"blocked: {run_id}" in below and "callback URL" in below
        token = ready.api("GET", f"/api/v1/waitpoints/tokens/{token_id}").json()
        assert token["blockedRunIds"] == [run_id]
        await pilot.press("enter")
        dialog = await until(pilot, lambda: isinstance(app.screen, JsonDialog) and app.screen,
                             "the dialog")
        dialog.query_one("#json-input", Input).value = "{not json"
        await pilot.press("enter")
        error = dialog.query_one("#json-error", Static)
        await until(pilot, lambda: "Not valid JSON" in str(error.render()),
                    "the validation message")
        assert app.screen is dialog  # nothing was sent
        dialog.query_one("#json-input", Input).value = '{"approved": true}'
        await pilot.press("enter")
        done = ready.wait_status(run_id)
        assert done["status"] == "COMPLETED" and done["output"] == {"ok": True,
                                                                    "output": {"approved": True}}
        await until(pilot, lambda: "COMPLETED" in cell(table, token_id, "status"),
                    "the token shown as completed")
        assert cell(table, token_id, "runs") == run_id  # done tokens still say which run waited
        assert f"waited: {run_id}" in str(app.query_one("#token-url", Static).render())


async def test_pausing_a_queue_from_the_queues_tab_stops_new_starts(ready: DaemonProcess) -> None:
    ready.wait_status(ready.trigger("hello", {}))  # the queue exists once a run used it
    app = dashboard(ready)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("3")
        table = app.query_one("#queues-table", DataTable)
        # rows are queue ids (several projects may each have a `hello`): find it by name
        await until(pilot, lambda: any(cell(table, k.value, "name") == "hello"
                                       for k in table.rows), "the hello queue")
        row = next(i for i, k in enumerate(table.rows) if cell(table, k.value, "name") == "hello")
        table.move_cursor(row=row)
        await pilot.press("p")
        key = table.coordinate_to_cell_key((row, 0)).row_key.value
        await until(pilot, lambda: "paused" in cell(table, key, "paused"), "the queue shown paused")
        blocked = ready.trigger("hello", {})
        # the dispatcher runs: it just skips the paused queue
        other = ready.trigger("child", {"n": 2})
        ready.wait_status(other)
        assert ready.run(blocked)["status"] == "QUEUED"
        await pilot.press("p")
        assert ready.wait_status(blocked)["status"] == "COMPLETED"


async def test_trace_tree_of_a_parent_has_attempt_wait_and_child(ready: DaemonProcess) -> None:
    # a child that returns at once: its parent's wait may answer continue, and is drawn anyway
    parent_id = ready.trigger("slow-parent", {"seconds": 0})
    child_id = ready.wait_status(parent_id)["output"]["child_id"]
    app = dashboard(ready)
    async with app.run_test(size=(160, 40)) as pilot:
        app.push_screen(RunDetail(app.api, parent_id))
        found = await until(pilot, lambda: isinstance(app.screen, RunDetail) and
                            list(app.screen.query("#trace-tree").results(Tree)),
                            "the detail screen")
        tree: Tree[TraceNode] = found[0]
        root = await until(pilot, lambda: tree.root.children and tree.root.data, "the trace")
        nodes: list[TraceNode] = root.walk()
        kinds = [n.kind for n in nodes]
        assert (kinds.count("attempt") == 1 and kinds.count("child") == 1
                and kinds.count("wait") == 1)
        wait = next(n for n in nodes if n.kind == "wait")
        assert f"wait for {child_id} · completed" == wait.label  # the id says it is a run
        assert "█" in str(tree.root.children[0].label)  # a timeline bar per node
        child_line = next(i for i, n in enumerate(tree.root.children) if n.data.kind == "child")
        tree.move_cursor(tree.root.children[child_line])
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetail)
                    and app.screen.run_id == child_id, "the child's detail")


async def test_runs_table_reads_the_next_pages_while_pagedown_is_held(ready: DaemonProcess) -> None:
    queued_behind_a_pause(ready, 260)
    app = dashboard(ready)
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one("#runs-table", DataTable)
        await until(pilot, lambda: table.row_count == 100, "the first page (and no more)")
        for loaded in (100, 200, 261):
            # keys faster than pages arrive: a later key must not cancel the page on its way
            for _ in range(6):
                app._driver.send_message(events.Key("pagedown", None))  # type: ignore[union-attr]
            await until(pilot, lambda n=loaded: table.row_count > n or table.row_count == 261,
                        f"the page after row {loaded}")
        assert table.row_count == 261
        await pilot.pause()  # the keys still queued, before the app closes
        assert str(app.query_one("#runs-title", Label).render()).startswith("261 runs")


async def test_detail_shows_a_runs_log_lines_while_it_runs(ready: DaemonProcess) -> None:
    # the app's own stream leaves log lines out: the detail screen follows its run's stream
    # the queue exists once a run used it
    ready.wait_status(ready.trigger("sleeper", {"seconds": 0}))
    pause = {"type": "task", "action": "pause"}
    ready.api("POST", "/api/v1/queues/sleeper/pause", json=pause).raise_for_status()
    run_id = ready.trigger("sleeper", {"seconds": 1})
    app = dashboard(ready)
    async with app.run_test(size=(160, 40)) as pilot:
        app.push_screen(RunDetail(app.api, run_id))
        detail = await until(pilot, lambda: isinstance(app.screen, RunDetail)
                             and app.screen.trace_ready and
                             app.screen, "the detail of the queued run")
        log = detail.query_one("#run-logs", RichLog)
        assert "sleeping" not in "".join(line.text for line in log.lines)
        assert log.border_title == "Logs: no lines yet"
        ready.api("POST", "/api/v1/queues/sleeper/pause",
                  json={**pause, "action": "resume"}).raise_for_status()
        await until(pilot, lambda: "sleeping" in "".join(line.text for line in log.lines),
                    "its log line, live")
        assert log.border_title == "Logs"
        ready.wait_status(run_id)


async def test_the_waitpoints_tab_says_when_there_are_no_tokens(ready: DaemonProcess) -> None:
    """No token yet: the tab says so and how one is made (it showed a bare header), and the
    first token made replaces the sentence with its own details."""
    app = dashboard(ready)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        below = app.query_one("#token-url", Static)
        await until(pilot, lambda: "No waitpoint tokens yet" in str(below.render()),
                    "the empty-tab sentence")
        assert "tokens create" in str(below.render())
        r = ready.api("POST", "/api/v1/waitpoints/tokens", json={"timeout": "10m"})
        assert r.status_code == 200, r.text
        await until(pilot, lambda: "callback URL" in str(below.render()), "the new token")
        assert "No waitpoint tokens yet" not in str(below.render())


async def test_end_and_home_move_the_runs_cursor_so_enter_opens_the_row_in_view(
        ready: DaemonProcess) -> None:
    """`End` scrolled the view (Textual's binding) but left the row cursor on the first run:
    `Enter` then opened a run the user did not pick, off screen."""
    queued_behind_a_pause(ready, 40)
    app = dashboard(ready)
    async with app.run_test(size=(120, 20)) as pilot:
        table = app.query_one("#runs-table", DataTable)
        await until(pilot, lambda: table.row_count >= 41, "the runs")
        await pilot.press("end")
        await until(pilot, lambda: table.cursor_row == table.row_count - 1, "the cursor at the end")
        assert table.scroll_y == table.max_scroll_y > 0  # the last row is in view
        last = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunDetail)
                    and app.screen.run_id == last, "the last row's detail")
        app.pop_screen()
        await pilot.press("home")
        await until(pilot, lambda: table.cursor_row == 0 and table.scroll_y == 0,
                    "the cursor back at the first row")


def _said(app: Dashboard) -> list[tuple[str, str]]:
    return [(n.message, n.severity) for n in app._notifications]


async def test_finishing_a_token_another_client_finished_first_says_nothing_changed(
        ready: DaemonProcess) -> None:
    """The table showed the token WAITING, another client completed it, then the user timed it
    out (`t`) or completed it from the dialog: the dashboard said "Timed out …" / "Completed …"
    although its call changed nothing. It says so, as a warning, by the daemon's answer."""
    first, second = (ready.api("POST", "/api/v1/waitpoints/tokens", json={}).json()["id"]
                     for _ in range(2))
    app = dashboard(ready)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("2")
        table = app.query_one("#tokens-table", DataTable)
        await until(pilot, lambda: "WAITING" in cell(table, first, "status")
                    and "WAITING" in cell(table, second, "status"), "both tokens waiting")
        table.move_cursor(row=table.get_row_index(first))
        complete = f"/api/v1/waitpoints/tokens/{first}/complete"
        assert ready.api("POST", complete, json={"data": "other"}).json()["changed"] is True
        await pilot.press("t")
        expected = (f"{first} was already completed or timed out; nothing was timed out",
                    "warning")
        await until(pilot, lambda: expected in _said(app), "the warning", timeout=15)
        assert not any(m.startswith("Timed out") for m, _ in _said(app)), _said(app)
        table.move_cursor(row=table.get_row_index(second))
        await pilot.press("enter")
        dialog = await until(pilot, lambda: isinstance(app.screen, JsonDialog) and app.screen,
                             "the dialog")
        complete = f"/api/v1/waitpoints/tokens/{second}/complete"
        assert ready.api("POST", complete, json={"data": "other"}).json()["changed"] is True
        dialog.query_one("#json-input", Input).value = '{"mine": true}'
        await pilot.press("enter")
        expected = (f"{second} was already completed or timed out; nothing was completed",
                    "warning")
        await until(pilot, lambda: expected in _said(app), "the warning", timeout=15)
        assert not any(m.startswith("Completed") for m, _ in _said(app)), _said(app)
    shown = ready.api("GET", f"/api/v1/waitpoints/tokens/{second}").json()
    assert shown["status"] == "COMPLETED" and "other" in shown["output"]
