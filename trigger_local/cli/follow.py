"""Watching a run until it ends: for `trigger --wait` and `runs logs --follow`.

We block on the daemon's event long-poll rather than sleeping between polls, so a run that
ends is noticed at once. Log lines are not all announced as events, so the long-poll is kept
short while following logs."""

from __future__ import annotations

from typing import Any

from ..sdk.client import SyncApiClient
from ..sdk.management import is_final
from .common import out
from .render import log_line

Json = dict[str, Any]

EVENT_WAIT_S = 10.0
LOG_EVENT_WAIT_S = 1.0
HISTORY_PAGE = 5000


class EventCursor:
    """Where we are in the daemon's event stream; starts at its end (history is not news)."""

    def __init__(self, api: SyncApiClient, run_id: str | None = None) -> None:
        self.api, self.run_id = api, run_id
        self.after: int | None = None

    def skip_history(self) -> int:
        after = 0
        while True:
            answer = self.api.events(after=after, run_id=self.run_id, limit=HISTORY_PAGE)
            if not answer.get("data"):
                self.after = after
                return after
            after = int(answer.get("next", after))

    def wait(self, wait_s: float) -> list[Json]:
        """Events since the last call, blocking up to `wait_s` for the first one."""
        after = self.skip_history() if self.after is None else self.after
        answer = self.api.events(after=after, wait_s=wait_s, run_id=self.run_id)
        self.after = int(answer.get("next", after))
        return list(answer.get("data") or [])


def wait_until_final(api: SyncApiClient, run_id: str) -> Json:
    """The run once it is final."""
    cursor = EventCursor(api, run_id)
    cursor.skip_history()
    while True:
        run = api.retrieve_run(run_id)
        if is_final(run):
            return run
        cursor.wait(EVENT_WAIT_S)


class LogTail:
    """Prints a run's new log lines on each `pump()`."""

    def __init__(self, api: SyncApiClient, run_id: str, show_run_id: bool = False) -> None:
        self.api, self.run_id, self.show_run_id = api, run_id, show_run_id
        self.after: int | None = None

    def pump(self) -> int:
        printed = 0
        while True:
            page = self.api.run_logs(self.run_id, after=self.after)
            entries = page.get("data") or []
            console = out()
            for entry in entries:
                console.print(log_line(entry, self.run_id if self.show_run_id else None))
            printed += len(entries)
            next_cursor = page.get("next", self.after)
            if not entries or next_cursor == self.after:
                return printed
            self.after = next_cursor


def follow_logs(api: SyncApiClient, run_id: str) -> Json:
    """Print the run's logs as they arrive until it is final; returns the final run."""
    tail = LogTail(api, run_id)
    cursor = EventCursor(api, run_id)
    cursor.skip_history()
    while True:
        tail.pump()
        run = api.retrieve_run(run_id)
        if is_final(run):
            tail.pump()  # lines flushed just before the end
            return run
        cursor.wait(LOG_EVENT_WAIT_S)
