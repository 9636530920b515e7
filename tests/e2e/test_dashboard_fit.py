"""The dashboard at 80×24 and with several projects, driven by its pilot against a real daemon:
the Queues tab lists each project's queues with a project column and pauses the selected
project's queue only; at 80 columns no column of the runs or tokens table is cut mid-value;
the `/` filter leaves the header in view; an API error shows as an error line, not as an empty
table under a header that says live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.cells import cell_len
from textual.widgets import DataTable, Input

from tui.common import DaemonHeader

from .conftest import DaemonProcess
from .test_cli_small_things import A_TASKS, B_TASKS, _project
from .test_dashboard import cell, dashboard, until

HEADER = "x-trigger-local-project"


def _trigger_in(d: DaemonProcess, project: str, task: str) -> str:
    r = d.api("POST", f"/api/v1/tasks/{task}/trigger", json={"payload": {}},
              headers={HEADER: project})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


async def test_queues_tab_pauses_the_selected_projects_queue_only(daemon: DaemonProcess,
                                                                  tmp_path: Path) -> None:
    for ref, source in (("proj_a", A_TASKS), ("proj_b", B_TASKS)):
        daemon.register(_project(tmp_path / ref, ref, source))
        daemon.wait_status(_trigger_in(daemon, ref, "hello"))  # its queue exists once used
    app = dashboard(daemon)
    async with app.run_test(size=(160, 40)) as pilot:
        await pilot.press("3")
        table = app.query_one("#queues-table", DataTable)

        def hello_rows() -> dict[str, Any]:
            return {cell(table, key.value, "project"): key.value for key in table.rows
                    if cell(table, key.value, "name") == "hello"}

        rows = await until(pilot, lambda: len(hello_rows()) == 2 and hello_rows(),
                           "both projects' hello queues")
        table.move_cursor(row=table.get_row_index(rows["proj_a"]))
        await pilot.press("p")
        await until(pilot, lambda: "paused" in cell(table, rows["proj_a"], "paused"),
                    "A's hello shown paused")
        assert "paused" not in cell(table, rows["proj_b"], "paused")
        in_a, in_b = _trigger_in(daemon, "proj_a", "hello"), _trigger_in(daemon, "proj_b", "hello")
        assert daemon.wait_status(in_b)["status"] == "COMPLETED"  # B's queue runs
        assert daemon.run(in_a)["status"] == "QUEUED"  # A's waits
        await pilot.press("p")
        assert daemon.wait_status(in_a)["status"] == "COMPLETED"


def _whole(table: DataTable[Any], keys: tuple[str, ...]) -> list[str]:
    """Cells of these columns that do not show whole (cut by the edge or by their width)."""
    room, right, cut = table.scrollable_content_region.width, 0, []
    for column in table.ordered_columns:
        width = column.get_render_width(table)
        right += width
        if column.key.value not in keys:
            continue
        inner = width - 2 * table.cell_padding
        for row in table.rows:
            value = str(table.get_cell(row, column.key))
            if right > room or cell_len(value) > inner:
                cut.append(f"{column.key.value}: {value}")
    return cut


async def test_at_80x24_no_column_is_cut_mid_value(ready: DaemonProcess) -> None:
    for task, payload in (("hello", {}), ("flaky", {}), ("sleeper", {"seconds": 0.2})):
        ready.wait_status(ready.trigger(task, payload))
    waiter = ready.trigger("token-waiter", {})
    ready.wait_status(waiter, "WAITING")
    app = dashboard(ready)
    async with app.run_test(size=(80, 24)) as pilot:
        runs = app.query_one("#runs-table", DataTable)
        await until(pilot, lambda: runs.row_count >= 4, "the runs")
        await pilot.pause(0.2)
        assert _whole(runs, ("id", "status", "started", "duration")) == []
        shown = sum(c.get_render_width(runs) for c in runs.ordered_columns)
        assert shown <= runs.scrollable_content_region.width  # nothing runs off the edge
        await pilot.press("2")
        tokens = app.query_one("#tokens-table", DataTable)
        await until(pilot, lambda: tokens.row_count, "the token")
        await pilot.pause(0.2)
        assert _whole(tokens, ("id", "status", "runs")) == []
        assert cell(tokens, next(iter(tokens.rows)).value, "runs") == waiter
        below = str(app.query_one("#token-url").render())
        assert "created " in below and "times out " in below  # the hidden columns' values


async def test_the_filter_at_80x24_keeps_the_header_in_view(ready: DaemonProcess) -> None:
    ids = [ready.trigger("hello", {}) for _ in range(30)]  # more rows than the screen has
    ready.wait_status(ids[-1])
    app = dashboard(ready)
    async with app.run_test(size=(80, 24)) as pilot:
        header = app.query_one(DaemonHeader)
        table = app.query_one("#runs-table", DataTable)
        await until(pilot, lambda: header.live and table.row_count >= 30, "the runs")
        await pilot.press("slash")
        await pilot.press(*"task:hello")
        await pilot.pause(0.3)
        assert app.query_one("#runs-filter", Input).has_focus
        assert app.screen.scroll_offset.y == 0 and app.screen.max_scroll_y == 0
        assert header.region.y == 0 and header.region.height == 1, header.region
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.screen.scroll_offset.y == 0 and header.region.y == 0, header.region


async def test_an_api_error_shows_as_an_error_line(ready: DaemonProcess) -> None:
    ready.wait_status(ready.trigger("hello", {}))
    app = dashboard(ready)
    async with app.run_test(size=(120, 30)) as pilot:
        table = app.query_one("#runs-table", DataTable)
        line = app.query_one("#runs-error")
        await until(pilot, lambda: table.row_count, "the runs")
        assert not line.display
        await pilot.press("slash")
        await pilot.press(*"status:nonsense")
        await pilot.press("enter")  # the API refuses the filter (400)
        await until(pilot, lambda: line.display, "the error line")
        assert "Could not read runs" in str(line.render()) and "NONSENSE" in str(line.render())
        assert table.row_count == 0
        app.query_one("#runs-filter", Input).value = ""
        app.query_one("#runs-filter", Input).focus()
        await pilot.press("enter")
        await until(pilot, lambda: table.row_count and not line.display, "the runs back")

