"""What every dashboard screen shares: the backend it is given and the header line (how
statuses and times look is `trigger_local.display`, shared with the CLI).

The dashboard is an HTTP client only (tests/test_import_rules.py): its backend is an
`ApiClient`, injected into `Dashboard` as harlequin injects its adapter, so tests hand it one
pointed at a real daemon on a free port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Static

from trigger_local.errors import TriggerLocalError
from trigger_local.sdk.client import ApiClient
from trigger_local.sdk.routes import Call

Json = dict[str, Any]
T = TypeVar("T")


def plain(value: object) -> Text:
    """A table cell of text someone typed (a tag, a queue name, a cron expression): shown as
    it is, never read as Rich markup (DataTable parses `str` cells, and a tag "[/]" made the
    dashboard exit with a MarkupError)."""
    return Text("" if value is None else str(value))


async def list_schedules(api: ApiClient) -> Json | None:
    """The schedules page, or None when this daemon has no schedules API yet."""
    try:
        answer: Any = await api.send(Call("GET", "/api/v1/schedules", params={"perPage": 100}))
    except Exception:  # noqa: BLE001 - any failure means "not available here", which we say
        return None
    return answer if isinstance(answer, dict) else {"data": answer}


class DashboardActions(Protocol):
    """What screens and views ask of the app they run in, tui/app.py's `Dashboard` (which
    imports them, so they name it by this protocol instead)."""

    api_url: str

    def sync_header(self, header: DaemonHeader) -> None: ...

    def open_run(self, run_id: str) -> None: ...

    def confirm_cancel(self, run_id: str, status: str | None) -> None: ...

    async def run_action_safely(self, call: Awaitable[Any], done: str,
                                unchanged: str = "") -> Any: ...


def dashboard(widget: Widget) -> DashboardActions:
    """The app `widget` runs in: always the `Dashboard` (tests run the same app)."""
    return cast(DashboardActions, widget.app)


#: the header's connection state (live: True, dropped: False, not yet: None), long and short
_STATES: dict[bool | None, tuple[str, str]] = {
    True: ("● live", "● live"), False: ("○ disconnected — reconnecting", "○ reconnecting"),
    None: ("○ connecting", "○ connecting")}


class DaemonHeader(Static):
    """`trigger-local · http://… · v0.1 · executor process · CRIU no · ● live`."""

    DEFAULT_CSS = "DaemonHeader { height: 1; width: 1fr; background: $boost; padding: 0 1; }"

    def __init__(self, url: str) -> None:
        super().__init__(id="daemon-header")
        # None until the event stream first answers: not "disconnected", it never connected yet
        self.url, self.status_info = url, {}  # type: tuple[str, Json]
        self.live: bool | None = None

    def set_status(self, info: Json) -> None:
        self.status_info = info
        self.refresh_text()

    def set_live(self, live: bool) -> None:
        self.live = live
        self.refresh_text()

    def on_resize(self) -> None:
        self.refresh_text()

    def refresh_text(self) -> None:
        info = self.status_info
        executor = info.get("executor")
        name = executor.get("name") if isinstance(executor, dict) else executor
        criu = info.get("criu")
        if criu is None and isinstance(executor, dict):
            criu = executor.get("checkpoint")
        parts = [self.url, f"v{info.get('version', '?')}", f"executor {name or '?'}",
                 f"CRIU {'yes' if criu is True else 'no'}"]
        state = _STATES[self.live][0]
        gap = "  "
        if len("trigger-local " + gap.join(parts) + gap + state) > self.size.width:
            # at 80 columns the whole line does not fit: fewer letters, the same facts
            parts[0], gap = self.url.removeprefix("http://"), " "
            state = _STATES[self.live][1]
        line = Text("trigger-local ", style="bold")
        line.append(gap.join(parts) + gap)
        line.append(state, style="bold green" if self.live else "bold red")
        self.update(line, layout=False)


class ErrorLine(Static):
    """A view's last failed read, in red above its table (hidden while reads succeed): an
    error from the API must not look like an empty table under a header that says live."""

    DEFAULT_CSS = "ErrorLine { height: auto; color: $error; padding: 0 1; display: none; }"

    def show(self, message: str) -> None:
        self.update(Text(message))
        self.display = True

    def clear(self) -> None:
        if self.display:
            self.update("")
            self.display = False


async def read_or_say(widget: Widget, what: str, call: Awaitable[T]) -> T | None:
    """The answer of `call`, or None after showing why not in the widget's ErrorLine."""
    line = next(iter(widget.query(ErrorLine).results(ErrorLine)), None)
    try:
        answer = await call
    except TriggerLocalError as exc:
        if line is not None:
            line.show(f"Could not read {what}: {exc.message}")
        return None
    if line is not None:
        line.clear()
    return answer


class Coalesce:
    """Runs `action` once, `delay_s` after the first of a burst of requests.

    At 200 runs/s every event cannot mean a reload; this keeps one reload per burst without a
    polling loop (the timer only exists while something changed)."""

    def __init__(self, widget: Widget, action: Callable[[], object], delay_s: float = 0.25) -> None:
        self.widget, self.action, self.delay_s = widget, action, delay_s
        self.pending = False

    def __call__(self) -> None:
        if not self.pending:
            self.pending = True
            self.widget.set_timer(self.delay_s, self._fire)

    def _fire(self) -> None:
        self.pending = False
        self.action()
