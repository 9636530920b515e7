"""The Queues and Schedules tabs. Queues: every project's, each with its project, running,
queued, limit, paused; `p` pauses or resumes the selected queue (of its own project: rows are
queue ids, and actions name the queue by id), `l` sets its concurrency limit (empty resets it to
the task's own)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from trigger_local.display import limit_text, table_time
from trigger_local.sdk.client import ApiClient

from .common import Coalesce, ErrorLine, Json, dashboard, list_schedules, plain, read_or_say
from .table import FitTable, RowTable
from .waitpoints import JsonDialog


class QueuesView(Vertical):
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause/resume"),
        Binding("l", "limit", "Limit…"),
    ]

    def __init__(self, api: ApiClient) -> None:
        super().__init__(id="queues-view")
        self.api = api
        self.queues: dict[str, Json] = {}
        self.soon = Coalesce(self, self.reload)

    def compose(self) -> ComposeResult:
        yield ErrorLine(id="queues-error")
        table = FitTable(id="queues-table", cursor_type="row")
        table.narrows = {"project": 7, "name": 8}
        for name in ("project", "name", "running", "queued", "limit", "paused"):
            table.add_column(name, key=name)
        yield table

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#queues-table", DataTable)

    def on_mount(self) -> None:
        self.reload()

    @work(exclusive=True, group="queues", exit_on_error=False)
    async def reload(self) -> None:
        page = await read_or_say(self, "queues", self.api.list_queues(per_page=100))
        if page is None:
            return
        table, keep = self.table, self.selected()
        table.clear()
        self.queues = {q["id"]: q for q in page.get("data") or []}
        for q in self.queues.values():
            paused = Text("paused", style="bold yellow") if q.get("paused") else Text("no")
            table.add_row(plain(q.get("project")), plain(q["name"]), str(q.get("running", 0)),
                          str(q.get("queued", 0)), limit_text(q.get("concurrencyLimit")), paused,
                          key=q["id"])
        if keep in self.queues:
            table.move_cursor(row=table.get_row_index(keep))

    def selected(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def on_daemon_events(self, events: list[Json]) -> None:
        # counts move with every run start and end: one reload per burst
        if any(str(e.get("type", "")).startswith(("queue.", "run.")) and not e.get("logs")
               for e in events):
            self.soon()

    def _label(self, queue_id: str) -> str:
        queue = self.queues[queue_id]
        return f"{queue.get('name')} of {queue.get('project')}" if queue.get("project") \
            else str(queue.get("name"))

    async def action_toggle_pause(self) -> None:
        queue_id = self.selected()
        if queue_id is None:
            return
        queue, label = self.queues[queue_id], self._label(queue_id)
        if queue.get("paused"):
            await dashboard(self).run_action_safely(self.api.resume_queue(queue_id, "id"),
                                                    f"Resumed {label}")
        else:
            await dashboard(self).run_action_safely(self.api.pause_queue(queue_id, "id"),
                                                    f"Paused {label}")
        self.reload()

    def action_limit(self) -> None:
        queue_id = self.selected()
        if queue_id is None:
            return
        name, kind = self._label(queue_id), "id"

        def done(value: Any) -> None:
            if value is JsonDialog.CANCELLED:
                return
            if value is None:
                call = self.api.reset_queue_concurrency(queue_id, kind)
            elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                call = self.api.override_queue_concurrency(queue_id, value, kind)
            else:
                self.notify("The limit is a whole number of 0 or more (empty resets)",
                            severity="error")
                return
            self.run_worker(dashboard(self).run_action_safely(call, f"Set the limit of {name}"))

        current = self.queues[queue_id].get("concurrencyLimit")
        self.app.push_screen(JsonDialog(f"Concurrency limit of {name} (empty resets):",
                                        "" if current is None else str(current)), done)


class SchedulesView(Vertical):
    """Lists schedules when the daemon has the API; says plainly when it does not."""

    def __init__(self, api: ApiClient) -> None:
        super().__init__(id="schedules-view")
        self.api = api

    def compose(self) -> ComposeResult:
        yield Static("loading…", id="schedules-note")
        table = RowTable(id="schedules-table", cursor_type="row")
        for name in ("id", "task", "cron", "next run", "active"):
            table.add_column(name, key=name)
        yield table

    def on_mount(self) -> None:
        self.reload()

    @work(exclusive=True, group="schedules", exit_on_error=False)
    async def reload(self) -> None:
        page = await list_schedules(self.api)
        note = self.query_one("#schedules-note", Static)
        table = self.query_one("#schedules-table", DataTable)
        table.clear()
        if page is None:
            note.update("schedules are not available in this daemon")
            table.display = False
            return
        rows = list(page.get("data") or [])
        note.update(f"{len(rows)} schedules")
        table.display = True
        for s in rows:
            gen = s.get("generator") or {}
            table.add_row(plain(s.get("id")), plain(s.get("task")),
                          plain(gen.get("expression") or s.get("cron", "")),
                          table_time(s.get("nextRun")), "yes" if s.get("active") else "no",
                          key=s.get("id"))
