"""What a run's status events say on a terminal, for `dev` (every run) and `trigger --wait`
(one run).

A status event carries the new status and, for a retry, the failed attempt's number and the
delay; the error itself lives on the run, so it is read (one request) only when an attempt
failed. Each failure shows the error's type and message; a run's final failure also shows the
last frames of its traceback, dimmed, as Trigger.dev's dev command does."""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text

from ..display import status_text, visible
from ..errors import TriggerLocalError
from ..sdk.client import SyncApiClient
from ..statuses import FAILED_STATUSES, FINAL_STATUSES, RunStatus

Json = dict[str, Any]

#: the statuses worth a line (queueing and dequeueing are noise while you watch; waiting for a
#: version is not: no project has the task yet)
SHOWN = FINAL_STATUSES | {RunStatus.EXECUTING, RunStatus.WAITING, RunStatus.PENDING_VERSION}
#: not started yet, and not by choice (a delayed run waits on purpose)
NOT_STARTING = frozenset({RunStatus.QUEUED, RunStatus.PENDING_VERSION})
#: frames of the traceback shown under a final failure
STACK_FRAMES = 3
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+')
#: our own runtime's frames say nothing about the user's bug
_OWN_FRAMES = re.compile(r"[/\\]trigger_local[/\\](runtime|sdk)[/\\]")


def error_summary(error: Any) -> str:
    """`Type: message` of an API error object (or whatever the run holds instead)."""
    if not isinstance(error, dict):
        return visible(str(error)) if error else "no error details"
    name = str(error.get("name") or error.get("type") or "Error")
    message = str(error.get("message") or "").strip()
    return visible(f"{name}: {message}" if message else name)


def stack_tail(stack: Any, frames: int = STACK_FRAMES) -> str:
    """The last `frames` frames of a Python traceback (file line and the code under it), leaving
    out trigger_local's own runtime frames when the user's code has any; "" without frames."""
    if not isinstance(stack, str) or not stack.strip():
        return ""
    blocks: list[list[str]] = []
    for line in stack.rstrip().splitlines():
        if _FRAME.match(line):
            blocks.append([line.strip()])
        elif blocks and line.startswith("    ") and len(blocks[-1]) < 2 and line.strip(" ^~"):
            blocks[-1].append("  " + line.strip())  # the source line, not the carets under it
    if not blocks:
        return ""
    theirs = [b for b in blocks if not _OWN_FRAMES.search(b[0])]
    shown = (theirs or blocks)[-frames:]
    return visible("\n".join(line for block in shown for line in block))


def attempt_error(api: SyncApiClient, run_id: str, attempt: Any) -> Any:
    """The error of the run's attempt number `attempt` (the run's last error if not found);
    None when the daemon cannot be asked."""
    try:
        run = api.retrieve_run(run_id)
    except TriggerLocalError:
        return None
    for item in run.get("attempts") or []:
        if isinstance(item, dict) and item.get("number") == attempt and item.get("error"):
            return item["error"]
    return run.get("error")


def retry_text(data: Json, error: Any) -> Text:
    retry_in = data.get("retry_in_s")
    when = f"in {retry_in:.1f}s" if isinstance(retry_in, int | float) else "soon"
    on = f" on {data['machine']} (out of memory)" if data.get("machine") else ""
    text = Text(f"attempt {data.get('attempt', '?')} failed: ", style="yellow")
    # a message's own full stop would stand before the semicolon
    text.append(error_summary(error).rstrip().removesuffix("."), style="red")
    text.append(f"; retrying{on} {when}", style="yellow")
    return text


def final_text(run: Json) -> Text:
    """A final status; for a failure, the error and the last frames of its traceback."""
    status = run.get("status")
    text = Text()  # not status_text itself: its colour would spread to the traceback
    text.append_text(status_text(status))
    error = run.get("error")
    if status in FAILED_STATUSES and error:
        text.append(": ")
        text.append(error_summary(error), style="red")
        tail = ""
        if isinstance(error, dict):
            tail = stack_tail(error.get("stackTrace") or error.get("stack"))
        if tail:
            text.append("\n" + "\n".join("    " + line for line in tail.splitlines()), style="dim")
    return text


class StatusLines:
    """Turns a run's status events into what to print (None: nothing worth a line)."""

    def __init__(self, api: SyncApiClient) -> None:
        self.api = api

    def describe(self, event: Json) -> Text | None:
        data, run_id = event.get("data") or {}, event.get("runId") or event.get("run_id")
        if event.get("type") == "run.replayed":  # docs/durability.md
            n = data.get("records") or 0
            return Text(f"resumed by replay (attempt {data.get('attempt', '?')}: {n} "
                        f"record{'s' if n != 1 else ''} answered from the store)", style="yellow")
        status = data.get("status")
        if not run_id or status is None or not str(event.get("type", "")).startswith("run."):
            return None
        if event.get("type") == "run.retrying":
            return retry_text(data, attempt_error(self.api, run_id, data.get("attempt")))
        if event.get("type") == "run.evicted":  # a long wait left memory (docs/durability.md)
            return Text(str(data.get("reason") or "evicted from memory; it resumes by replay"),
                        style="dim")
        if event.get("type") == "run.interrupted":  # a daemon stop sent it back to its queue
            return Text(f"interrupted ({data.get('reason') or 'the daemon stopped'}); back in its "
                        "queue, the attempt does not count", style="yellow")
        if status == "EXECUTING" and data.get("interrupted_by"):
            return Text(f"started again after an interruption (attempt {data.get('attempt', '?')}; "
                        f"{data['interrupted_by']})", style="yellow")
        if status == RunStatus.QUEUED and data.get("from") == RunStatus.PENDING_VERSION:
            return Text("QUEUED (a version with this task was registered)")
        if status not in SHOWN or status == data.get("from"):
            return None
        if status in FAILED_STATUSES:
            try:
                return final_text(self.api.retrieve_run(run_id))
            except TriggerLocalError:
                pass
        return status_text(status)


def why_not_started(api: SyncApiClient, run: Json) -> str | None:
    """Why a run that should have started by now has not (None: no reason found, or it has
    started): its project's dev stopped, no project has its task, its queue is paused."""
    status = run.get("status")
    if status not in NOT_STARTING:
        return None
    try:
        if status == RunStatus.PENDING_VERSION:
            return _no_version(api, run)
        reason = run.get("statusReason")
        if reason:
            return str(reason)
        queue = api.retrieve_queue(str(run.get("queue") or ""))
    except TriggerLocalError:
        return None
    if queue.get("paused"):
        return (f"its queue {queue.get('name')} is paused: resume it with `trigger-local "
                f"queues resume {queue.get('name')}`")
    limit, running = queue.get("concurrencyLimit"), queue.get("running")
    if isinstance(limit, int) and isinstance(running, int) and running >= limit:
        return f"its queue {queue.get('name')} is full ({running} running, limit {limit})"
    return None


def _no_version(api: SyncApiClient, run: Json) -> str:
    projects = api.list_projects().get("data") or []
    known = ", ".join(f"{p.get('ref')} ({p.get('projectDir')})" for p in projects
                      if isinstance(p, dict)) or "none yet"
    where = f"project {run['project']}" if run.get("project") else "no registered project"
    return (f"{where} has no version with task {run.get('taskIdentifier')!r} yet; registered "
            f"projects: {known}. Run `trigger-local dev` in the task's project")
