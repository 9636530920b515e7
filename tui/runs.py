"""The Runs tab: a live table of runs, newest first, read a page at a time.

Pages come from the API's cursor (`page[after]`) only as the cursor nears the bottom, so
100,000 runs cost what the user has scrolled past. Status changes from the event stream
update a row in place; new runs are prepended only while the user watches the top (else the
title counts them, and `g` shows them), so the row under the cursor never jumps away. Once a
second the durations of the live runs on screen move on (a WAITING run's keeps counting)."""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.widgets import DataTable, Input, Label

from trigger_local.clock import Clock, SystemClock
from trigger_local.display import duration_text, epoch_s, status_text, table_time
from trigger_local.sdk.client import ApiClient
from trigger_local.statuses import FINAL_STATUSES, RunStatus

from .common import Coalesce, ErrorLine, Json, dashboard, plain, read_or_say
from .table import RunsTable

PAGE = 100
#: how close to the last loaded row the cursor gets before the next page is asked for
PREFETCH_ROWS = 30
#: the most rows the table holds: Textual's DataTable does work in proportion to its rows on
#: every cursor move, so past this the rows farthest from the cursor are dropped (and read
#: again from the API when the cursor comes back)
MAX_ROWS = 500
#: while the cursor is on the newest run, new runs appear at most this often (each time is a
#: request for the first page and a redraw of the table)
SHOW_NEW_S = 0.5
COLUMNS = ("id", "project", "task", "status", "started", "duration", "tags", "version")
STATUS_WORDS = {str(s) for s in RunStatus}
TICK_S = 1.0


def parse_filter(text: str) -> tuple[Json, str]:
    """`status:failed task:hello tag:x project:proj_a words` → API filters and the free text
    left over."""
    filters: dict[str, list[str]] = {}
    words = []
    for token in text.split():
        key, sep, value = token.partition(":")
        if sep and key in ("status", "task", "tag", "project") and value:
            filters.setdefault(key, []).append(value.upper() if key == "status" else value)
        elif token.upper() in RunStatus.__members__:
            filters.setdefault("status", []).append(token.upper())
        else:
            words.append(token.lower())
    return filters, " ".join(words)


def duration_ms(run: Json, now: float) -> Any:
    """The API's duration, or for a run that started and has not finished, its time so far."""
    started = epoch_s(run.get("startedAt"))
    if started is None or run.get("status") in FINAL_STATUSES:
        return run.get("durationMs")
    return (now - started) * 1000


def row_of(run: Json, now: float) -> tuple[Any, ...]:
    return (run["id"], run.get("project", ""), plain(run.get("taskIdentifier", "")),
            status_text(run.get("status")),
            table_time(run.get("startedAt")), duration_text(duration_ms(run, now)),
            plain(",".join(run.get("tags") or [])), run.get("version", ""))


class RunsView(Vertical):
    BINDINGS = [
        Binding("/", "filter", "Filter"),
        Binding("o", "open", "Open"),
        Binding("c", "cancel", "Cancel…"),
        Binding("r", "replay", "Replay"),
        Binding("y", "copy_id", "Copy id"),
        Binding("g", "top", "Newest"),
    ]
    DEFAULT_CSS = """
    RunsView #runs-filter { height: 3; }
    RunsView #runs-title { height: 1; width: 1fr; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, api: ApiClient, clock: Clock | None = None) -> None:
        super().__init__(id="runs-view")
        self.api = api
        self.clock = clock or SystemClock()
        self.runs: dict[str, Json] = {}
        self.next_page: str | None = None
        #: a next page is on its way (only one at a time: a held pagedown must not cancel it)
        self.more_pending = False
        #: the first row's id when newer runs were dropped from the table (None: it starts at
        #: the newest run)
        self.prev_page: str | None = None
        #: bumped each time the first page is read again, so a late next page is dropped
        self.generation = 0
        self.unseen = 0
        self.filters: Json = {}
        self.text = ""
        #: loaded runs whose row changed while off screen: redrawn when they scroll into view
        self.stale: set[str] = set()
        self.soon = Coalesce(self, self.show_new, SHOW_NEW_S)

    def compose(self) -> ComposeResult:
        yield Input(placeholder="filter: status:failed task:hello tag:x project:proj_a text ⏎",
                    id="runs-filter")
        yield Label("", id="runs-title")
        yield ErrorLine(id="runs-error")
        table = RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        # at 80 columns: ids, statuses, times and durations whole; names give way, then the
        # version and the tags go
        table.narrows = {"project": 7, "task": 8, "tags": 6, "version": 9}
        table.drop_order = ("version", "tags")
        for name in COLUMNS:
            table.add_column(name, key=name)
        yield table

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#runs-table", DataTable)

    def on_mount(self) -> None:
        self.watch(self.table, "scroll_y", self.redraw_stale, init=False)
        self.set_interval(TICK_S, self.tick)
        self.reload()

    def _title(self) -> None:
        more = "" if self.next_page is None and self.prev_page is None else "+"
        news = f" · {self.unseen} new (g)" if self.unseen else ""
        # a fixed-size label: no layout pass of the whole screen for a new count
        self.query_one("#runs-title", Label).update(f"{len(self.runs)}{more} runs{news}",
                                                    layout=False)

    def _wanted(self, run: Json) -> bool:
        if not self.text:
            return True
        hay = " ".join(str(run.get(k, "")) for k in ("id", "taskIdentifier", "status")) + " " + \
            " ".join(run.get("tags") or [])
        return all(word in hay.lower() for word in self.text.split())

    async def _page(self, after: str | None = None,
                    before: str | None = None) -> tuple[list[Json], Json] | None:
        """A page of runs; None when the API refused (the error line says why)."""
        page = await read_or_say(self, "runs", self.api.list_runs(
            status=self.filters.get("status"), task=self.filters.get("task"),
            tag=self.filters.get("tag"), project=self.filters.get("project"), limit=PAGE,
            after=after, before=before))
        if page is None:
            return None
        return list(page.get("data") or []), page.get("pagination") or {}

    @work(exclusive=True, group="runs-reload", exit_on_error=False)
    async def reload(self) -> None:
        """The first page again (filter changed, `g`, back from another tab)."""
        await self._load_first(only_at_top=False)

    @work(exclusive=True, group="runs-reload", exit_on_error=False)
    async def show_new(self) -> None:
        """New runs arrived while the user watches the top; dropped if they moved away meanwhile."""
        await self._load_first(only_at_top=True)

    async def _load_first(self, only_at_top: bool) -> None:
        loaded = await self._page()
        table = self.table
        if loaded is None:  # rows of another filter would read as its answer
            if not only_at_top:
                table.clear()
                self.runs, self.next_page, self.prev_page = {}, None, None
                self._title()
            return
        runs, pagination = loaded
        if only_at_top and table.cursor_row > 0:
            # the user started reading: the rows under the cursor stay put (`g` shows new ones)
            return
        self.generation += 1
        self.next_page, self.prev_page = pagination.get("next"), None
        table.clear()
        self.runs, self.unseen, self.stale = {}, 0, set()
        self._append(runs)

    def _append(self, runs: list[Json]) -> None:
        table, now = self.table, self.clock.now()
        for run in runs:
            if run["id"] not in self.runs and self._wanted(run):
                self.runs[run["id"]] = run
                table.add_row(*row_of(run, now), key=run["id"])
        self._title()

    def _show_window(self, runs: list[Json]) -> None:
        """Show these rows instead, the run under the cursor where it was on screen."""
        table = self.table
        keep, on_screen = self.selected(), table.cursor_row - int(table.scroll_y)
        table.clear()
        self.runs, self.stale = {}, set()
        self._append(runs)
        if keep in self.runs:
            row = table.get_row_index(keep)
            table.move_cursor(row=row, scroll=False)
            # the new rows' height is only known after a refresh: scroll then
            table.call_after_refresh(table.scroll_to, y=max(0, row - on_screen), animate=False)

    def want_more(self) -> None:
        """Ask for the next page once the cursor nears the last loaded row, or the newer page
        once it nears the first while newer ones were dropped; one request at a time."""
        table = self.table
        if self.more_pending:
            return
        if self.next_page is not None and table.cursor_row >= table.row_count - PREFETCH_ROWS:
            self.more_pending = True
            self.load_older(self.next_page, self.generation)
        elif self.prev_page is not None and table.cursor_row < PREFETCH_ROWS:
            self.more_pending = True
            self.load_newer(self.prev_page, self.generation)

    @work(group="runs-more", exit_on_error=False)
    async def load_older(self, after: str, generation: int) -> None:
        try:
            loaded = await self._page(after=after)
        finally:
            self.more_pending = False
        if generation != self.generation or loaded is None:
            return  # the first page was read again meanwhile: this page continues an old list
        runs, pagination = loaded
        self.next_page = pagination.get("next")
        self._append(runs)
        if len(self.runs) > MAX_ROWS:  # the table holds a window: drop the newest rows
            window = list(self.runs.values())[-MAX_ROWS:]
            self.prev_page = window[0]["id"]
            self._show_window(window)
        self.want_more()  # still near the end: pagedown held down, or a text filter hid the page

    @work(group="runs-more", exit_on_error=False)
    async def load_newer(self, before: str, generation: int) -> None:
        try:
            loaded = await self._page(before=before)
        finally:
            self.more_pending = False
        if generation != self.generation or loaded is None:
            return
        runs, pagination = loaded
        self.prev_page = pagination.get("previous")
        window = [r for r in runs if r["id"] not in self.runs] + list(self.runs.values())
        if len(window) > MAX_ROWS:  # and drop the oldest
            window = window[:MAX_ROWS]
            self.next_page = window[-1]["id"]
        self._show_window(window)
        self.want_more()

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self.want_more()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.filters, self.text = parse_filter(event.value)
        self.table.focus()
        self.reload()

    def on_daemon_events(self, events: list[Json]) -> None:
        """A batch from the stream: note each loaded run's new status, redraw only the rows on
        screen (the rest when they scroll into view), and count or show new runs."""
        created = 0
        for event in events:
            data = event.get("data") or {}
            run_id, status = event.get("runId"), data.get("status")
            if not run_id or status is None:
                continue
            known = self.runs.get(run_id)
            if known is not None:
                self._note(known, status, event.get("at"))
                self.stale.add(run_id)
            elif event.get("type") == "run.created":
                created += 1
        self.redraw_stale()
        if created:
            self.unseen += created
            if self.table.cursor_row <= 0 and self.prev_page is None and len(self.runs) <= PAGE * 5:
                self.soon()  # the user watches the top: show new runs, once per burst
            else:
                self._title()

    @staticmethod
    def _note(run: Json, status: str, at: Any) -> None:
        # the event's own time gives start and duration: no request per run at 200 runs/s
        run["status"] = status
        if status == "EXECUTING" and not run.get("startedAt"):
            run["startedAt"] = at
        started, ended = epoch_s(run.get("startedAt")), epoch_s(at)
        if status in FINAL_STATUSES and started is not None and ended is not None:
            run["durationMs"] = (ended - started) * 1000

    def redraw_stale(self, *_: Any) -> None:
        """Rewrite the cells of changed runs that are on screen. Any cell update makes the
        table render all its visible rows again, so a batch that changes none costs nothing."""
        if not self.stale:
            return
        table, shown, now = self.table, self._rows_on_screen(), self.clock.now()
        for run_id in [r for r in self.stale if r in self.runs and table.get_row_index(r) in shown]:
            self.stale.discard(run_id)
            run = self.runs[run_id]
            # status, started, duration
            for column, value in zip(COLUMNS[3:6], row_of(run, now)[3:6], strict=True):
                table.update_cell(run_id, column, value)

    def _rows_on_screen(self) -> range:
        top = int(self.table.scroll_y)
        return range(top, min(top + self.table.scrollable_content_region.height,
                              self.table.row_count))

    def tick(self) -> None:
        """The durations of the runs on screen that started and have not finished move on."""
        table, now = self.table, self.clock.now()
        for row in self._rows_on_screen():
            run_id = str(table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value)
            run = self.runs.get(run_id)
            if run is None or run.get("status") in FINAL_STATUSES or not run.get("startedAt"):
                continue
            text = duration_text(duration_ms(run, now))
            if table.get_cell(run_id, "duration") != text:  # each update redraws every visible row
                table.update_cell(run_id, "duration", text)

    def selected(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def action_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def action_top(self) -> None:
        self.table.move_cursor(row=0)
        self.reload()

    def action_open(self) -> None:
        if (run_id := self.selected()) is not None:
            dashboard(self).open_run(run_id)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        dashboard(self).open_run(str(event.row_key.value))

    def action_cancel(self) -> None:
        if (run_id := self.selected()) is not None:
            dashboard(self).confirm_cancel(run_id, self.runs.get(run_id, {}).get("status"))

    async def action_replay(self) -> None:
        if (run_id := self.selected()) is not None:
            await dashboard(self).run_action_safely(self.api.replay_run(run_id),
                                                    f"Replayed {run_id} as {{id}}")

    def action_copy_id(self) -> None:
        if (run_id := self.selected()) is not None:
            self.app.copy_to_clipboard(run_id)
            self.notify(f"Copied {run_id}", markup=False)
