"""Watching a run until it ends: for `trigger --wait` and `runs logs --follow`.

Both read the daemon's server-sent event stream filtered to the run, so an end or a log
line is printed as soon as it is committed. Each time the stream (re)opens we re-read the
run (and its log page), which covers whatever happened before we were connected; log ids
only grow, so a line is never printed twice."""

from __future__ import annotations

from typing import Any

from ..sdk.client import SyncApiClient
from ..sdk.events import OPEN, iter_events
from ..sdk.management import is_final
from .common import out
from .render import log_line

Json = dict[str, Any]


class LogTail:
    """Prints a run's log lines once each, from pages (`pump`) or from stream events (`show`)."""

    def __init__(self, api: SyncApiClient, run_id: str, show_run_id: bool = False) -> None:
        self.api, self.run_id, self.show_run_id = api, run_id, show_run_id
        self.after: int | None = None

    def show(self, entries: list[Json]) -> int:
        console, printed = out(), 0
        for entry in entries:
            entry_id = entry.get("id")
            if isinstance(entry_id, int) and self.after is not None and entry_id <= self.after:
                continue
            console.print(log_line(entry, self.run_id if self.show_run_id else None))
            printed += 1
            if isinstance(entry_id, int):
                self.after = entry_id
        return printed

    def pump(self) -> int:
        """Print every line not printed yet, reading pages from the API."""
        printed = 0
        while True:
            page = self.api.run_logs(self.run_id, after=self.after)
            entries = page.get("data") or []
            shown = self.show(entries)
            printed += shown
            if not entries or shown == 0:
                return printed


def _changes_status(event: Json) -> bool:
    return event.get("type") == OPEN or "status" in (event.get("data") or {})


def wait_until_final(api: SyncApiClient, run_id: str) -> Json:
    """The run once it is final."""
    for event in iter_events(api, run_id=run_id, types=["run."]):
        if _changes_status(event):
            run = api.retrieve_run(run_id)
            if is_final(run):
                return run
    raise AssertionError("the event stream never ends")  # pragma: no cover


def follow_logs(api: SyncApiClient, run_id: str) -> Json:
    """Print the run's logs as they arrive until it is final; returns the final run."""
    tail = LogTail(api, run_id)
    for event in iter_events(api, run_id=run_id, types=["run."]):
        if event.get("type") == OPEN:
            tail.pump()  # what was logged before we were connected
        elif event.get("logs"):
            tail.show(list(event["logs"]))
        if _changes_status(event):
            run = api.retrieve_run(run_id)
            if is_final(run):
                tail.pump()
                return run
    raise AssertionError("the event stream never ends")  # pragma: no cover
