"""`Dashboard`: the Textual app behind `trigger-local dashboard`.

One task reads the daemon's event stream (no polling loop) and hands each event to the
visible views; the stream reconnects by itself with its last seq, and the header says
whether it is live. Before any of that, the daemon must answer once: with no daemon there,
the app exits at once (code 1) saying how to start one, instead of reconnecting forever.
Everything goes through the injected `ApiClient`; time comes from the injected `Clock`."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, TabbedContent, TabPane

from trigger_local.clock import Clock, SystemClock
from trigger_local.errors import TriggerLocalError
from trigger_local.sdk.client import ApiClient
from trigger_local.sdk.events import OPEN, stream_events
from trigger_local.statuses import FINAL_STATUSES

from .common import DaemonHeader, Json
from .confirm import ConfirmDialog
from .detail import RunDetail
from .queues import QueuesView, SchedulesView
from .runs import RunsView
from .waitpoints import WaitpointsView

TABS = ("runs", "waitpoints", "queues", "schedules")


EVENT_BATCH_S = 0.2
STREAM_EXCLUDES = ("run.logs",)


class Dashboard(App[None]):
    TITLE = "trigger-local"
    # every tab fills the screen and no more: its table scrolls, the screen never does (a
    # screen taller than the terminal scrolled the header away when `/` focused the filter)
    CSS = """
    #tabs, #tabs TabPane, RunsView, WaitpointsView, QueuesView, SchedulesView { height: 1fr; }
    #runs-table, #tokens-table, #queues-table, #schedules-table { height: 1fr; }
    """
    BINDINGS = [
        # the tabs' own titles say their keys: the footer keeps its room for the others
        Binding("1", "tab('runs')", "Runs", show=False),
        Binding("2", "tab('waitpoints')", "Waitpoints", show=False),
        Binding("3", "tab('queues')", "Queues", show=False),
        Binding("4", "tab('schedules')", "Schedules", show=False),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, api: ApiClient, clock: Clock | None = None) -> None:
        super().__init__()
        self.api = api
        self.clock = clock or SystemClock()
        self.api_url = api.endpoint.base_url
        self.live: bool | None = None  # None: the event stream has not answered yet
        self.was_live = False
        self.status_info: Json = {}
        self.events_seen = 0
        self._pending: list[Json] = []

    def compose(self) -> ComposeResult:
        yield DaemonHeader(self.api_url)
        with TabbedContent(initial="runs", id="tabs"):
            with TabPane("Runs 1", id="runs"):
                yield RunsView(self.api, self.clock)
            with TabPane("Waitpoints 2", id="waitpoints"):
                yield WaitpointsView(self.api)
            with TabPane("Queues 3", id="queues"):
                yield QueuesView(self.api)
            with TabPane("Schedules 4", id="schedules"):
                yield SchedulesView(self.api)
        yield Footer(show_command_palette=False)  # ctrl+p still opens it; the keys need the room

    def on_mount(self) -> None:
        self.query_one("#runs-table", DataTable).focus()
        # events are applied in batches, at most 5 times a second: at hundreds of runs per
        # second, handling each event on its own kept the app too busy to answer a keypress
        self.set_interval(EVENT_BATCH_S, self._flush_events)
        self.first_contact()

    async def on_unmount(self) -> None:
        self.workers.cancel_all()
        await self.api.aclose()  # its keep-alive connection belongs to this app's loop

    # -- the header and the stream ------------------------------------------------------------
    def sync_header(self, header: DaemonHeader) -> None:
        header.status_info, header.live = self.status_info, self.live
        header.refresh_text()

    def _headers(self) -> list[DaemonHeader]:
        return [h for screen in self.screen_stack for h in screen.query(DaemonHeader)]

    def set_live(self, live: bool) -> None:
        if live == self.live or not (live or self.was_live):
            return  # (a stream not answering yet has not dropped: the header says connecting)
        self.live = live
        for header in self._headers():
            header.set_live(live)
        if live:
            self.load_status()
            if self.was_live:
                self.refresh_views()  # whatever changed while we were away
            self.was_live = True  # (the first time, every view has just read its data)

    @work(exclusive=True, group="status", exit_on_error=False)
    async def first_contact(self) -> None:
        """Ask the daemon for its status; follow its events once it answered. Nothing to follow
        before a first answer: exit, saying why (no daemon at the address, a refused key)."""
        try:
            self.status_info = await self.api.status()
        except TriggerLocalError as exc:
            self.exit(return_code=1, message=Text.assemble(("Error: ", "bold red"),
                                                           str(exc.message)))
            return
        for header in self._headers():
            header.set_status(self.status_info)
        self.follow_events()

    @work(exclusive=True, group="status", exit_on_error=False)
    async def load_status(self) -> None:
        try:
            self.status_info = await self.api.status()
        except TriggerLocalError:
            return
        for header in self._headers():
            header.set_status(self.status_info)

    @work(group="stream")
    async def follow_events(self) -> None:
        # log lines are most of the stream at load and no tab shows them: the run detail
        # screen opens a stream of its own run for those
        async for event in stream_events(self.api, exclude=STREAM_EXCLUDES, on_state=self.set_live):
            if event.get("type") == OPEN:
                continue
            self.events_seen += 1
            self._pending.append(event)

    def _flush_events(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        try:
            self.dispatch_events(batch)
        except NoMatches:
            return  # the app is closing: its widgets are already gone

    def dispatch_events(self, events: list[Json]) -> None:
        """Hand events to the views that can show them now (hidden tabs reload when shown)."""
        detail = self.screen if isinstance(self.screen, RunDetail) else None
        tabs = self.query("#tabs").results(TabbedContent)
        active = next(iter(tabs), None)
        if active is None:
            return  # shutting down
        active_name = active.active
        kinds: dict[str, type[RunsView | WaitpointsView | QueuesView]] = {
            "runs": RunsView, "waitpoints": WaitpointsView, "queues": QueuesView}
        # the runs table is kept current even when hidden: it is what the user comes back to
        views = [view for name, kind in kinds.items() if name in (active_name, "runs")
                 for view in self.query(kind).results(kind)]
        for view in views:
            view.on_daemon_events(events)
        if detail is not None:
            for event in events:
                detail.on_daemon_event(event)

    def refresh_views(self) -> None:
        for runs in self.query(RunsView).results(RunsView):
            runs.show_new()  # not under a user who scrolled away: only when they watch the top
        kinds: tuple[type[WaitpointsView | QueuesView | SchedulesView], ...] = (
            WaitpointsView, QueuesView, SchedulesView)
        for kind in kinds:
            for view in self.query(kind).results(kind):
                view.reload()

    # -- actions -------------------------------------------------------------------------------
    def action_tab(self, name: str) -> None:
        tabs = self.query_one("#tabs", TabbedContent)
        tabs.active = name
        view = self.query_one(f"#{name}-view")
        if isinstance(view, RunsView | WaitpointsView | QueuesView | SchedulesView):
            view.reload()
        for table in view.query(DataTable):
            table.focus()

    def open_run(self, run_id: str) -> None:
        self.push_screen(RunDetail(self.api, run_id, self.clock))

    def confirm_cancel(self, run_id: str, status: str | None) -> None:
        """`c` on a run: ask first (y/n, escape is no); a finished run has nothing to cancel."""
        if status in FINAL_STATUSES:
            self.notify(f"{run_id} has already finished ({status})", severity="warning",
                        markup=False)
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self.run_action_safely(self.api.cancel_run(run_id),
                                                       f"Canceled {run_id}"))

        self.push_screen(ConfirmDialog(f"Cancel {run_id}?"), answered)

    async def run_action_safely(self, call: Awaitable[Any], done: str,
                                unchanged: str = "") -> Any:
        """Run one API call for a key the user pressed; say what happened either way.
        `unchanged`: said instead of `done` when the answer says the call changed nothing
        (`"changed": false`: a token another client finished a moment before)."""
        try:
            answer = await call
        except TriggerLocalError as exc:
            self.notify(str(getattr(exc, "message", exc)), severity="error", timeout=6)
            return None
        fields = answer if isinstance(answer, dict) else {}
        if unchanged and fields.get("changed") is False:
            self.notify(unchanged, severity="warning", timeout=6)
            return answer
        self.notify(done.replace("{id}", str(fields.get("id", "?"))))
        return answer
