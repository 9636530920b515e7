"""Watching a run until it ends: for `trigger --wait` and `runs logs --follow`.

Both read the daemon's server-sent event stream filtered to the run, so an end or a log
line is printed as soon as it is committed. `trigger --wait` takes the stream's cursor before
it triggers (`event_cursor`) and opens the watch from there, so every event of the run comes,
the first attempt's too. Without a cursor, each time the stream (re)opens we re-read the run
(and its log page), which covers whatever happened before we were connected; log ids only
grow, so a line is never printed twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console
from rich.text import Text

from ..display import clock_time, status_text
from ..errors import (
    DaemonConnectionLostError,
    DaemonNotRunningError,
    DaemonUnreachableError,
    TriggerLocalError,
)
from ..sdk.client import SyncApiClient
from ..sdk.events import OPEN, iter_events
from ..sdk.management import is_final
from .common import err, out
from .daemon_presence import DaemonPresence
from .render import log_line
from .run_events import NOT_STARTING, SHOWN, StatusLines, error_summary, final_text, why_not_started

Json = dict[str, Any]
T = TypeVar("T")

#: how long a run may sit queued before `trigger --wait` says why it does not start
NOT_STARTED_GRACE_S = 2.0


def watch_presence(api: SyncApiClient, console: Callable[[], Console]) -> DaemonPresence:
    """What `trigger --wait` and `runs logs --follow` say while the daemon is away: they keep
    waiting for it (the run keeps its place), and say so."""
    return DaemonPresence(api, console,
                          "start it again (`trigger-local up`, or `dev` in the project); this "
                          "wait goes on when it answers (Ctrl-C stops waiting, not the run).",
                          "still waiting for the run.")


def _refuse_reconnect(live: bool) -> None:
    if not live:
        raise DaemonUnreachableError("the event stream is not there")


#: how many times a watch makes a read between two events whose connection is cut
LOST_READ_TRIES = 3


def between_events(read: Callable[[], T]) -> T | None:
    """A read a watch makes between two events of its stream; None when the daemon is not
    there (stopped or killed just then). The stream notices that too, says so
    (`DaemonPresence`) and reads again when it reopens, so the watch goes on. A read whose
    connection is cut (a kept-alive connection closed as the request went out, a daemon killed
    during it: the next try finds it gone) is tried again at once; cut every time, it is the
    error: a daemon still up keeps its stream open and may send no further event, so a read
    given up on would leave the watch waiting for ever."""
    for tries_left in reversed(range(LOST_READ_TRIES)):
        try:
            return read()
        except DaemonNotRunningError:
            return None
        except DaemonConnectionLostError:
            if not tries_left:
                raise
    return None  # pragma: no cover - the loop returns or raises


def event_cursor(api: SyncApiClient) -> int | None:
    """Where the daemon's event stream is now (None: it cannot be reached). A watch opened from
    it later misses nothing that happened in between, such as a fast first attempt."""
    events = iter_events(api, types=["run."], on_state=_refuse_reconnect)
    try:
        seq = next(events).get("seq")
    except (DaemonUnreachableError, StopIteration):
        return None
    finally:
        events.close()
    return seq if isinstance(seq, int) else None


class LogTail:
    """Prints a run's log lines once each, from pages (`pump`) or from stream events (`show`)."""

    def __init__(self, api: SyncApiClient, run_id: str, show_run_id: bool = False,
                 console: Callable[[], Console] = out) -> None:
        self.api, self.run_id, self.show_run_id = api, run_id, show_run_id
        self.console = console
        self.after: int | None = None

    def show(self, entries: list[Json]) -> int:
        console, printed = self.console(), 0
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
            run = between_events(lambda: api.retrieve_run(run_id))
            if run is not None and is_final(run):
                return run
    raise AssertionError("the event stream never ends")  # pragma: no cover


class RunWatch:
    """Prints one run's status changes and log lines as they happen (for `trigger --wait`);
    the final status, with the error and the end of its traceback, is printed once at the end.

    From `after` (a cursor taken before the trigger) the stream delivers every event of the
    run. Without one, whatever happened before the stream opened (a fast first attempt that
    failed already) is caught up from the run itself: its failed attempts, then its current
    status. A run still not started after a short grace gets a line saying why."""

    def __init__(self, api: SyncApiClient, run_id: str, console: Callable[[], Console],
                 after: int | None = None) -> None:
        self.api, self.run_id, self.console, self.after = api, run_id, console, after
        self.tail = LogTail(api, run_id, console=console)
        self.status_lines = StatusLines(api)
        self.last_status: str | None = None
        self.reported_attempts: set[int] = set()
        self._lock = threading.Lock()  # the grace timer prints from its own thread

    def _print(self, at: Any, text: Text) -> None:
        with self._lock:
            self.console().print(Text(clock_time(at) + " ", style="dim") + text)

    def on_event(self, event: Json) -> None:
        if event.get("type") == OPEN:
            if self.after is None:
                between_events(self.tail.pump)  # what was logged before we were connected
            return
        if event.get("logs"):
            with self._lock:
                self.tail.show(list(event["logs"]))
            return
        data = event.get("data") or {}
        status = data.get("status")
        if status is None or status == self.last_status or is_final({"status": status}):
            return
        if event.get("type") == "run.retrying" and data.get("attempt") in self.reported_attempts:
            return
        text = self.status_lines.describe(event)
        if text is not None:
            self._print(event.get("at"), text)
            self.last_status = status
            if event.get("type") == "run.retrying" and isinstance(data.get("attempt"), int):
                self.reported_attempts.add(data["attempt"])

    def catch_up(self, run: Json) -> None:
        """The run as read when the stream (re)opened: failed attempts and a status we missed."""
        for attempt in run.get("attempts") or []:
            number = attempt.get("number") if isinstance(attempt, dict) else None
            if not isinstance(number, int) or number in self.reported_attempts \
                    or attempt.get("status") not in ("FAILED", "CRASHED"):
                continue
            self.reported_attempts.add(number)
            if not is_final(run) or number != run.get("attemptCount"):  # the last one ends the run
                text = Text(f"attempt {number} failed: ", style="yellow")
                text.append(error_summary(attempt.get("error")), style="red")
                self._print(attempt.get("completedAt"), text)
        status = run.get("status")
        if status in SHOWN and status != self.last_status and not is_final(run):
            self._print(run.get("updatedAt"), status_text(status))
            self.last_status = status

    def explain_if_not_started(self) -> None:
        """After the grace: say why the run has not started, and that we keep waiting."""
        try:
            run = self.api.retrieve_run(self.run_id)
        except TriggerLocalError:
            return
        if run.get("status") not in NOT_STARTING:
            return
        why = why_not_started(self.api, run) or "no free slot yet"
        text = Text(f"{run.get('status')}: not started yet: {why}.", style="yellow")
        text.append("\n  Still waiting; Ctrl-C stops waiting (the run stays queued).",
                    style="dim")
        self._print(time.time(), text)

    def finish(self, run: Json) -> None:
        with self._lock:
            between_events(self.tail.pump)
        self._print(run.get("finishedAt") or run.get("updatedAt"), final_text(run))

    def run(self) -> Json:
        """The run once it is final."""
        timer = threading.Timer(NOT_STARTED_GRACE_S, self.explain_if_not_started)
        timer.daemon = True
        timer.start()
        try:
            return self._watch()
        finally:
            timer.cancel()

    def _watch(self) -> Json:
        opened = 0
        for event in iter_events(self.api, run_id=self.run_id, types=["run."], after=self.after,
                                 on_state=watch_presence(self.api, self.console)):
            self.on_event(event)
            opened += event.get("type") == OPEN
            # from a cursor the stream replays every event: the first open needs no catching
            # up (a reopen does check the run: the stream had ended, the run may have too)
            if self.after is not None and event.get("type") == OPEN and opened == 1:
                continue
            # From a cursor every status change comes, in order: only the final one ends the
            # watch. Reading the run at an earlier event could find it over already (a run that
            # resumes and returns at once) and end before its EXECUTING line was shown.
            if self.after is not None and event.get("type") != OPEN \
                    and not is_final(event.get("data") or {}):
                continue
            if _changes_status(event):
                run = between_events(lambda: self.api.retrieve_run(self.run_id))
                if run is None:
                    continue
                if event.get("type") == OPEN:
                    self.catch_up(run)
                if is_final(run):
                    self.finish(run)
                    return run
        raise AssertionError("the event stream never ends")  # pragma: no cover


def follow_logs(api: SyncApiClient, run_id: str) -> Json:
    """Print the run's logs as they arrive until it is final; returns the final run."""
    tail = LogTail(api, run_id)
    for event in iter_events(api, run_id=run_id, types=["run."],
                             on_state=watch_presence(api, err)):
        if event.get("type") == OPEN:
            between_events(tail.pump)  # what was logged before we were connected
        elif event.get("logs"):
            tail.show(list(event["logs"]))
        if _changes_status(event):
            run = between_events(lambda: api.retrieve_run(run_id))
            if run is not None and is_final(run):
                between_events(tail.pump)
                return run
    raise AssertionError("the event stream never ends")  # pragma: no cover
