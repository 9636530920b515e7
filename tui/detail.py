"""The run detail screen: trace tree with timeline bars and live logs (side by side on a wide
terminal, one above the other on a narrow one), and the run's payload, output or error,
metadata, tags and realtime streams (live, tui/streams.py) below. While the run lives, its
durations and bars move on once a second."""

from __future__ import annotations

import json

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, RichLog, Static, Tree
from textual.widgets.tree import TreeNode

from trigger_local.clock import Clock, SystemClock
from trigger_local.display import attributes_text, clock_time, level_style, visible
from trigger_local.sdk.client import ApiClient
from trigger_local.sdk.events import OPEN, stream_events
from trigger_local.sdk.realtime import read_stream

from .common import Coalesce, DaemonHeader, Json, dashboard
from .streams import StreamsView
from .trace import BAR_WIDTH, TraceNode, bar, build_trace, window

#: below this many columns the trace and the logs are stacked, each the full width, so that
#: trace labels and log lines are not cut (side by side the tree would get 3/5 of 80 columns)
SIDE_BY_SIDE_MIN = 160
NARROW_BAR_WIDTH = 8
TICK_S = 1.0


def log_text(entry: Json) -> Text:
    level = str(entry.get("level") or "INFO").upper()
    line = Text(clock_time(entry.get("at")) + " ", style="dim")
    line.append(f"{level:<5} ", style=level_style(level))
    line.append(visible(("span " if entry.get("kind") == "span" else "")
                        + str(entry.get("message", ""))))
    line.append(attributes_text(entry.get("attributes")), style="dim")
    return line


def facts_text(run: Json) -> Text:
    out = Text()
    for title, key in (("payload", "payload"), ("output", "output"), ("metadata", "metadata")):
        if run.get(key) not in (None, {}, ""):
            out.append(f"{title}: ", style="bold")
            out.append(json.dumps(run[key], default=str)[:2000] + "\n")
    if run.get("tags"):
        out.append("tags: ", style="bold")
        out.append(", ".join(run["tags"]) + "\n")
    error = run.get("error")
    if error:
        out.append("error: ", style="bold red")
        out.append(visible(f"{error.get('name', '')}: {error.get('message', '')}") + "\n",
                   style="red")
        if error.get("stackTrace"):
            out.append(visible(str(error["stackTrace"])) + "\n", style="dim red")
    out.rstrip()  # no empty last line: it would cost a scroll bar in a short pane
    return out


class RunDetail(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("enter", "open_child", "Open child", show=True),
        Binding("c", "cancel", "Cancel…"),
        Binding("y", "copy_id", "Copy id"),
    ]
    DEFAULT_CSS = """
    RunDetail #detail-top { height: 2fr; }
    RunDetail #trace-tree { width: 3fr; border: round $primary; }
    RunDetail #run-logs { width: 2fr; border: round $secondary; }
    RunDetail #run-facts { height: 1fr; border: round $panel; }
    RunDetail.-narrow #detail-top { layout: vertical; height: 3fr; }
    RunDetail.-narrow #trace-tree { width: 1fr; height: auto; max-height: 70%; }
    RunDetail.-narrow #run-logs { width: 1fr; height: 1fr; }
    """

    def __init__(self, api: ApiClient, run_id: str, clock: Clock | None = None) -> None:
        super().__init__()
        self.api, self.run_id = api, run_id
        self.clock = clock or SystemClock()
        self.bar_width = BAR_WIDTH
        self.root: TraceNode | None = None
        self.status: str | None = None
        #: the tree's lines with their nodes, relabelled in place as time passes
        self.lines: list[TreeNode[TraceNode]] = []
        self.last_log_id = 0
        self.trace_ready = False
        self.early: list[Json] = []
        self.soon = Coalesce(self, self.load)
        self.streams = StreamsView()

    def compose(self) -> ComposeResult:
        # the app's header, repeated so it stays visible here
        yield DaemonHeader(dashboard(self).api_url)
        with Vertical():
            with Horizontal(id="detail-top"):
                yield Tree[TraceNode](self.run_id, id="trace-tree")
                yield RichLog(id="run-logs", wrap=True, markup=False, max_lines=5000, min_width=20)
            with VerticalScroll(id="run-facts"):
                yield Static("", id="run-facts-text")
                yield Static("", id="run-streams-text")
        yield Footer(show_command_palette=False)  # ctrl+p still opens it; the keys need the room

    def on_mount(self) -> None:
        dashboard(self).sync_header(self.query_one(DaemonHeader))
        self.query_one("#trace-tree", Tree).focus()
        self.set_interval(TICK_S, self.tick)
        self.follow()

    def on_resize(self) -> None:
        narrow = self.size.width < SIDE_BY_SIDE_MIN
        self.set_class(narrow, "-narrow")
        self.bar_width = NARROW_BAR_WIDTH if narrow else BAR_WIDTH
        self.relabel()

    @work(group="run-stream", exit_on_error=False)
    async def follow(self) -> None:
        """This run's own event stream: its log lines live (the app's all-runs stream leaves
        them out). Each time it opens, the trace is read again, so nothing before is missed."""
        async for event in stream_events(self.api, run_id=self.run_id):
            if event.get("type") == OPEN:
                self.load()
            else:
                self.on_run_event(event)

    @work(exclusive=True, group="trace", exit_on_error=False)
    async def load(self) -> None:
        trace = await self.api.run_trace(self.run_id)
        self.show_trace(trace)

    def show_trace(self, trace: Json) -> None:
        self.root = build_trace(trace)
        self.status = (trace.get("run") or {}).get("status")
        tree: Tree[TraceNode] = self.query_one("#trace-tree", Tree)
        tree.clear()
        tree.root.data = self.root
        self.lines = [tree.root]
        self._add(tree.root, self.root)
        self.relabel()
        tree.root.expand_all()
        logs = [e for e in trace.get("logs") or [] if int(e.get("id") or 0) > self.last_log_id]
        self.append_logs(logs)
        self.title_logs()
        self.query_one("#run-facts-text", Static).update(facts_text(trace.get("run") or {}))
        self.trace_ready = True
        self.find_streams()
        early, self.early = self.early, []
        for event in early:
            self.on_run_event(event)

    @work(group="streams", exit_on_error=False)
    async def find_streams(self) -> None:
        answer = await self.api.run_streams(self.run_id)
        for key in self.streams.new_keys([s["key"] for s in answer["streams"]]):
            self.follow_stream(key)

    @work(group="streams", exit_on_error=False)
    async def follow_stream(self, key: str) -> None:
        async for chunk in read_stream(self.run_id, key, client=self.api, timeout_s=600):
            self.streams.add(key, chunk)
            self.query_one("#run-streams-text", Static).update(self.streams.render())

    def _add(self, parent: TreeNode[TraceNode], node: TraceNode) -> None:
        for child in node.children:
            # every line foldable, even a leaf: one icon in front of each keeps the bars aligned
            branch = parent.add(child.label, data=child, expand=True)
            self.lines.append(branch)
            self._add(branch, child)

    def relabel(self) -> None:
        """Draw every line's bar and text as of now."""
        if self.root is None:
            return
        now = self.clock.now()
        lo, hi = window(self.root, now)
        for line in self.lines:
            node = line.data
            if node is None:  # never: `_add` gives every line its node
                continue
            text = Text(bar(node.start, node.end, lo, hi, self.bar_width) + " ", style="cyan")
            line.set_label(text.append(node.text(now), style=""))

    def tick(self) -> None:
        """Once a second, while anything in the trace still runs or waits: move it on."""
        if self.root is not None and any(node.open for node in self.root.walk()):
            self.relabel()

    def append_logs(self, entries: list[Json]) -> None:
        log = self.query_one("#run-logs", RichLog)
        for entry in entries:
            entry_id = int(entry.get("id") or 0)
            if entry_id and entry_id <= self.last_log_id:
                continue
            self.last_log_id = max(self.last_log_id, entry_id)
            log.write(log_text(entry))
        if entries:
            self.title_logs()

    def title_logs(self) -> None:
        """An empty box could be a log not loaded yet: its title says when there is none."""
        log = self.query_one("#run-logs", RichLog)
        log.border_title = "Logs" if log.lines else "Logs: no lines yet"

    def on_daemon_event(self, event: Json) -> None:
        """An event from the app's all-runs stream: only a child's change matters here."""
        if self._mentions_child(event):
            self.soon()

    def on_run_event(self, event: Json) -> None:
        if not self.trace_ready:
            self.early.append(event)  # its log lines must come after the trace's own
            return
        if event.get("type") == "run.stream":
            self.find_streams()
            return
        if event.get("logs"):
            self.append_logs(list(event["logs"]))
            if not any(e.get("kind") == "span" for e in event["logs"]):
                return
        self.soon()  # status, wait or span change: redraw the tree once per burst

    def _mentions_child(self, event: Json) -> bool:
        return self.root is not None and any(n.run_id == event.get("runId")
                                             for n in self.root.children)

    def action_open_child(self) -> None:
        node = self.query_one("#trace-tree", Tree).cursor_node
        data = node.data if node is not None else None
        if isinstance(data, TraceNode) and data.kind == "child" and data.run_id:
            self.app.push_screen(RunDetail(self.api, data.run_id, self.clock))

    def action_cancel(self) -> None:
        dashboard(self).confirm_cancel(self.run_id, self.status)

    def action_copy_id(self) -> None:
        self.app.copy_to_clipboard(self.run_id)
        self.notify(f"Copied {self.run_id}")

    def on_tree_node_selected(self, event: Tree.NodeSelected[TraceNode]) -> None:
        # the tree takes enter itself; a selected child-run node opens that run
        self.action_open_child()
