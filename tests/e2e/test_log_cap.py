"""The cap on an attempt's log volume, against a real daemon and a real task process: a task
printing far past TRIGGER_LOCAL_LOG_LIMIT_BYTES stores its lines up to the cap, one marker line
says how many lines and bytes were dropped (in `runs logs` and the API the dashboard reads), the
run completes as it would have, and its next attempt has a cap of its own. Without the cap a
task printing 100 MB stored ~160 MB of log rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DaemonProcess, write_project
from .test_cli_messages import cli

CAP = 4096
LINE = 100  # characters a line, then its number: 2,000 lines are ~200 KB

TASKS = '''
from trigger_local import Retry, task

@task(id="chatty", retry=Retry(max_attempts=2, min_timeout_s=0.05, max_timeout_s=0.05))
async def chatty(payload, ctx):
    for i in range(payload["lines"]):
        print("x" * 100 + f" {i:05d}")
    if ctx.attempt.number < payload.get("fail_until", 0):
        raise RuntimeError("again")
    return "done"
'''


@pytest.fixture
def capped(tmp_path: Path) -> Iterator[DaemonProcess]:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_LOG_LIMIT_BYTES": str(CAP)})
    d.start()
    d.register(write_project(tmp_path / "project", TASKS))
    yield d
    d.close()


def _marker(messages: list[str]) -> list[str]:
    return [m for m in messages if "were dropped" in m]


def test_lines_past_the_cap_are_dropped_and_one_marker_says_how_many(
        capped: DaemonProcess) -> None:
    run_id = capped.trigger("chatty", {"lines": 2000})
    run = capped.wait_status(run_id, timeout=90)
    assert run["status"] == "COMPLETED" and run["output"] == "done", run  # not failed
    messages = capped.log_messages(run_id)
    kept = [m for m in messages if m.startswith("x" * LINE)]
    markers = _marker(messages)
    assert len(markers) == 1, markers
    assert 0 < sum(len(m.encode()) for m in kept) <= CAP, len(kept)
    dropped = 2000 - len(kept)
    assert kept == ["x" * LINE + f" {i:05d}" for i in range(len(kept))]  # the first lines
    assert markers[0].startswith(f"{dropped:,} log lines ({dropped * (LINE + 6):,} bytes)"), \
        markers[0]
    assert "TRIGGER_LOCAL_LOG_LIMIT_BYTES" in markers[0] and f"{CAP:,} bytes" in markers[0]
    assert messages[-1] == markers[0]  # after every line the attempt kept
    shown = cli(capped, "runs", "logs", run_id)
    assert shown.returncode == 0 and markers[0] in shown.stdout.replace("\n", ""), shown
    assert shown.stdout.count("were dropped") == 1, shown.stdout


def test_each_attempt_has_a_cap_of_its_own_and_a_quiet_one_no_marker(
        capped: DaemonProcess) -> None:
    run_id = capped.trigger("chatty", {"lines": 200, "fail_until": 2})
    run = capped.wait_status(run_id, timeout=90)
    assert run["status"] == "COMPLETED" and run["attemptCount"] == 2, run
    messages = capped.log_messages(run_id)
    assert len(_marker(messages)) == 2, _marker(messages)  # one per attempt
    quiet = capped.trigger("chatty", {"lines": 3})
    assert capped.wait_status(quiet, timeout=90)["status"] == "COMPLETED"
    assert len(capped.log_messages(quiet)) >= 3 and not _marker(capped.log_messages(quiet))
