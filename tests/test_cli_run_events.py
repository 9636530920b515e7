"""How run events read on a terminal (cli/run_events.py, shared by `dev` and `trigger --wait`):
the error's `Type: message`, the user's last frames of a traceback, and one line per event."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rich.console import Console

from trigger_local.cli import follow
from trigger_local.cli.follow import RunWatch
from trigger_local.cli.run_events import StatusLines, error_summary, final_text, stack_tail
from trigger_local.sdk.events import OPEN

STACK = '''Traceback (most recent call last):
  File "/site-packages/trigger_local/runtime/execute.py", line 64, in run_task
    output = await _call(task, payload, ctx)
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/site-packages/trigger_local/runtime/execute.py", line 45, in _call
    return await task.fn(*args)
  File "/home/ada/proj/trigger/tasks.py", line 12, in always_fails
    check(payload)
  File "/home/ada/proj/trigger/tasks.py", line 8, in check
    raise ValueError("never good enough")
    ~~~~~^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
ValueError: never good enough
'''


class NoApi:
    """StatusLines asks the daemon only when an attempt failed; these events need nothing."""

    def retrieve_run(self, run_id: str) -> dict[str, Any]:
        raise AssertionError("not asked for")


def test_error_summary_is_type_and_message() -> None:
    assert error_summary({"name": "RuntimeError", "message": "boom"}) == "RuntimeError: boom"
    assert error_summary({"name": "TaskProcessExited"}) == "TaskProcessExited"
    assert error_summary(None) == "no error details"


def test_stack_tail_keeps_the_users_frames_without_carets() -> None:
    tail = stack_tail(STACK)
    assert tail.splitlines() == [
        'File "/home/ada/proj/trigger/tasks.py", line 12, in always_fails', "  check(payload)",
        'File "/home/ada/proj/trigger/tasks.py", line 8, in check',
        '  raise ValueError("never good enough")']
    assert stack_tail(STACK, frames=1).startswith('File "/home/ada/proj/trigger/tasks.py", line 8')
    assert stack_tail("") == "" and stack_tail(None) == ""


def test_final_failure_shows_the_error_then_the_frames() -> None:
    text = final_text({"status": "FAILED", "error": {"name": "ValueError",
                                                     "message": "never good enough",
                                                     "stackTrace": STACK}})
    assert text.plain.startswith("FAILED: ValueError: never good enough\n    File ")
    assert final_text({"status": "COMPLETED"}).plain == "COMPLETED"


def test_interrupted_and_started_again_read_as_such() -> None:
    lines = StatusLines(NoApi())  # type: ignore[arg-type]
    interrupted = lines.describe({"type": "run.interrupted", "runId": "run_1",
                                  "data": {"status": "QUEUED", "reason": "the daemon stopped"}})
    assert (interrupted is not None
            and interrupted.plain.startswith("interrupted (the daemon stopped)"))
    again = lines.describe({"type": "run.executing", "runId": "run_1",
                            "data": {"status": "EXECUTING", "from": "DEQUEUED", "attempt": 2,
                                     "interrupted_by": "the daemon stopped"}})
    assert (again is not None
            and again.plain.startswith("started again after an interruption (attempt 2"))
    assert lines.describe({"type": "run.queued", "runId": "run_1",
                           "data": {"status": "QUEUED"}}) is None


def test_an_eviction_reads_as_its_reason() -> None:
    lines = StatusLines(NoApi())  # type: ignore[arg-type]
    reason = ("evicted from memory: it waited 30.2 s, longer than evict_after_s (30 s); it "
              "resumes by replay when its wait completes")
    evicted = lines.describe({"type": "run.evicted", "runId": "run_1",
                              "data": {"status": "WAITING", "from": "WAITING", "reason": reason}})
    assert evicted is not None and evicted.plain == reason


def test_a_replay_reads_as_one_line_with_its_record_count() -> None:
    lines = StatusLines(NoApi())  # type: ignore[arg-type]
    replayed = lines.describe({"type": "run.replayed", "runId": "run_1",
                               "data": {"run_id": "run_1", "attempt": 2, "records": 3}})
    assert replayed is not None
    assert replayed.plain == "resumed by replay (attempt 2: 3 records answered from the store)"


class FinishedApi:
    """The daemon as a watch sees it when the run resumed and returned at once: read at any
    point, the run is over already."""

    def __init__(self) -> None:
        self.reads = 0

    def retrieve_run(self, run_id: str) -> dict[str, Any]:
        self.reads += 1
        return {"id": run_id, "status": "COMPLETED", "attemptCount": 1, "attempts": []}

    def run_logs(self, run_id: str, after: int | None = None) -> dict[str, Any]:
        return {"data": []}


def test_a_watch_from_a_cursor_shows_executing_again_after_a_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`trigger --wait` shows the run going back to EXECUTING after each wait (as for its first
    start), also when the run is over by the time the watch reads it: from a cursor the stream
    brings every status change, and only the final one ends the watch."""
    def change(seq: int, type_: str, status: str, previous: str | None) -> dict[str, Any]:
        return {"seq": seq, "type": type_, "runId": "run_1", "at": "2026-01-01T00:00:00.000Z",
                "data": {"run_id": "run_1", "status": status, "from": previous}}

    stream = [{"type": OPEN, "seq": 0},
              change(1, "run.created", "QUEUED", None),
              change(2, "run.dequeued", "DEQUEUED", "QUEUED"),
              change(3, "run.executing", "EXECUTING", "DEQUEUED"),
              change(4, "run.waiting", "WAITING", "EXECUTING"),
              change(5, "run.unblocked", "QUEUED", "WAITING"),
              change(6, "run.dequeued", "DEQUEUED", "QUEUED"),
              change(7, "run.resumed", "EXECUTING", "DEQUEUED"),
              change(8, "run.completed", "COMPLETED", "EXECUTING")]
    monkeypatch.setattr(follow, "iter_events", lambda *args, **kwargs: iter(stream))
    console = Console(file=io.StringIO(), width=200)
    run = RunWatch(FinishedApi(), "run_1", lambda: console, after=0)  # type: ignore[arg-type]
    assert run._watch()["status"] == "COMPLETED"
    lines = [line.split(" ", 1)[1] for line in console.file.getvalue().splitlines()]
    assert lines == ["EXECUTING", "WAITING", "EXECUTING", "COMPLETED"], lines
