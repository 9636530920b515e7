"""The Waitpoints tab: tokens waiting and done, with the runs blocked on them (the API's
`blockedRunIds`: while a token waits, the runs blocked on it now; once done, the runs that
waited on it); complete one with JSON typed in a dialog (parsed before anything is sent), time
it out, copy its callback URL. Ids show whole: in a narrow terminal the tags and then the
times give way (the selected token's times, the full list of its runs and its URL are under
the table)."""

from __future__ import annotations

import json
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Static

from trigger_local.cli.render import first_and_more
from trigger_local.display import MISSING, status_text, table_time
from trigger_local.sdk.client import ApiClient
from trigger_local.statuses import WaitpointStatus

from .common import Coalesce, ErrorLine, Json, dashboard, plain, read_or_say
from .table import FitTable


class JsonDialog(ModalScreen[Any]):
    """Asks for a JSON value; dismisses with it parsed, or with `CANCELLED`."""

    CANCELLED = object()
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    JsonDialog { align: center middle; }
    JsonDialog > Vertical { width: 70; max-width: 95%; height: auto; border: thick $primary;
                            padding: 1 2; background: $surface; }
    JsonDialog #json-error { color: $error; height: auto; }
    """

    def __init__(self, title: str, initial: str = "{}") -> None:
        super().__init__()
        self.title_text, self.initial = title, initial

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text)
            yield Input(self.initial, id="json-input")
            yield Static("", id="json-error")
            yield Button("Send (enter)", id="json-send", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#json-input", Input).focus()

    def _submit(self) -> None:
        raw = self.query_one("#json-input", Input).value
        try:
            value = json.loads(raw) if raw.strip() else None
        except ValueError as exc:
            self.query_one("#json-error", Static).update(f"Not valid JSON: {exc}")
            return
        self.dismiss(value)

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, _event: Button.Pressed) -> None:
        self._submit()

    def action_cancel(self) -> None:
        self.dismiss(self.CANCELLED)


class WaitpointsView(Vertical):
    BINDINGS = [
        Binding("enter", "complete", "Complete…"),
        Binding("t", "timeout", "Time out"),
        Binding("u", "copy_url", "Copy URL"),
    ]
    DEFAULT_CSS = """
    WaitpointsView #token-url { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, api: ApiClient) -> None:
        super().__init__(id="waitpoints-view")
        self.api = api
        self.tokens: dict[str, Json] = {}
        self.soon = Coalesce(self, self.reload)

    def compose(self) -> ComposeResult:
        yield ErrorLine(id="tokens-error")
        table = FitTable(id="tokens-table", cursor_type="row")
        # ids whole (the runs column was cut mid-id at 80 columns): the tags, then the times
        # give way; the times of the selected token are under the table too
        table.narrows = {"tags": 6}
        table.drop_order = ("tags", "timeout", "created")
        for name in ("id", "status", "created", "timeout", "runs", "tags"):
            table.add_column(name, key=name)
        yield table
        yield Static("", id="token-url")

    @property
    def table(self) -> DataTable[Any]:
        return self.query_one("#tokens-table", DataTable)

    def on_mount(self) -> None:
        self.reload()

    @work(exclusive=True, group="tokens", exit_on_error=False)
    async def reload(self) -> None:
        page = await read_or_say(self, "waitpoint tokens", self.api.list_tokens(limit=100))
        if page is None:
            return
        table, keep = self.table, self.selected()
        table.clear()
        self.tokens = {t["id"]: t for t in page.get("data") or []}
        for token in self.tokens.values():
            table.add_row(token["id"], status_text(token.get("status")),
                          table_time(token.get("createdAt")),
                          table_time(token.get("timeoutAt")),
                          first_and_more(token.get("blockedRunIds")) or MISSING,
                          plain(",".join(token.get("tags") or [])), key=token["id"])
        if keep in self.tokens:
            table.move_cursor(row=table.get_row_index(keep))
        self._show_url()

    def selected(self) -> str | None:
        table = self.table
        if table.row_count == 0:
            return None
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)

    def _show_url(self) -> None:
        token = self.tokens.get(self.selected() or "")
        text = ""
        if token:
            runs = token.get("blockedRunIds") or []
            waiting = token.get("status") == WaitpointStatus.WAITING
            verb = "blocked" if waiting else "waited"
            # the table's own enter hides ours from the footer: say it here
            hint = "  (enter completes it)" if waiting else ""
            times = f"created {table_time(token.get('createdAt'))}"
            if token.get("timeoutAt"):
                times += f", times out {table_time(token.get('timeoutAt'))}"
            text = (f"{verb}: {', '.join(runs)}" if runs else "no run waits on it") + hint + \
                f"\n{times}\ncallback URL (u copies): {token['url']}"
        elif not self.tokens:  # an empty table under a bare header said nothing
            text = ("No waitpoint tokens yet: a task makes one with wait.create_token(), "
                    "`trigger-local tokens create` by hand.")
        self.query_one("#token-url", Static).update(text)

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_url()

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_complete()

    def on_daemon_events(self, events: list[Json]) -> None:
        # a token made or completed, a run starting to wait on one, or a run listed under one
        # moving on (canceled, resumed): it is no longer blocked
        listed = {run_id for token in self.tokens.values()
                  if token.get("status") == WaitpointStatus.WAITING
                  for run_id in token.get("blockedRunIds") or []}
        if any(str(e.get("type", "")).startswith(("waitpoint.", "run.waiting"))
               or e.get("runId") in listed for e in events):
            self.soon()

    def action_complete(self) -> None:
        token_id = self.selected()
        if token_id is None or self.tokens[token_id].get("status") != WaitpointStatus.WAITING:
            self.notify("Select a WAITING token to complete", severity="warning")
            return

        def done(value: Any) -> None:
            if value is not JsonDialog.CANCELLED:
                self.run_worker(dashboard(self).run_action_safely(
                    self.api.complete_token(token_id, value), f"Completed {token_id}",
                    _unchanged(token_id, "completed")))

        self.app.push_screen(JsonDialog(f"Complete {token_id} with this JSON output:"), done)

    async def action_timeout(self) -> None:
        if (token_id := self.selected()) is not None:
            await dashboard(self).run_action_safely(self.api.timeout_token(token_id),
                                                    f"Timed out {token_id}",
                                                    _unchanged(token_id, "timed out"))

    def action_copy_url(self) -> None:
        token = self.tokens.get(self.selected() or "")
        if token:
            self.app.copy_to_clipboard(token["url"])
            self.notify("Copied the callback URL")


def _unchanged(token_id: str, action: str) -> str:
    """What the daemon's `"changed": false` means: the token was done before this call (it
    timed out, or another client completed it a moment ago), as the CLI says."""
    return f"{token_id} was already completed or timed out; nothing was {action}"
