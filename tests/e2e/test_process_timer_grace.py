"""One timer per wait, against a real daemon (docs/waits.md, "Who keeps a wait's timer"): the
waits a shared process keeps the timer of are ended by the process's word (`timerDue`), and the
daemon's own timer — which waits `process_timer_grace_s` past the due time for such a wait — no
longer resumes them too. It stays the backstop: the runs of a stopped (SIGSTOP) task process are
resumed by the daemon once the grace is over, and go on when the process does."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DaemonProcess, wait_for, write_project
from .replay_support import worker_pids
from .test_process_timers import RUNS, TASKS, _check_completed, _naps, _status


def _daemon(tmp_path: Path, grace_s: float) -> Iterator[DaemonProcess]:
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_CHECKPOINTS": "off",
                                 "TRIGGER_LOCAL_PROCESS_TIMER_GRACE_S": str(grace_s)}).start()
    try:
        d.register(write_project(tmp_path / "project", TASKS))
        yield d
    finally:
        for pid in worker_pids(home):  # a stopped task process would outlive the test
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        d.close()


@pytest.fixture
def patient(tmp_path: Path) -> Iterator[DaemonProcess]:
    # a grace no load makes a process's word miss: the daemon's timer must never be needed
    yield from _daemon(tmp_path, 60.0)


@pytest.fixture
def backstop(tmp_path: Path) -> Iterator[DaemonProcess]:
    yield from _daemon(tmp_path, 1.0)


@pytest.mark.timeout(300)
def test_the_daemons_timer_does_not_resume_waits_their_process_reported(
        patient: DaemonProcess, tmp_path: Path) -> None:
    run_ids = _naps(patient, tmp_path / "marks")
    resumed = _check_completed(patient, run_ids)
    assert all(e["data"].get("resumed_by") == "process" for e in resumed), resumed
    status = _status(patient)
    assert int(status["channelFrames"].get("timerDue", 0)) == RUNS, status["channelFrames"]
    # the daemon told no process of a resume: its timer ended none of these waits
    assert status["executor"]["resumes"]["messages"] == 0, status["executor"]["resumes"]


@pytest.mark.timeout(300)
def test_the_daemons_timer_resumes_the_runs_of_a_stopped_process_after_the_grace(
        backstop: DaemonProcess, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    run_ids = _naps(backstop, marks)
    pids = worker_pids(backstop.home)
    assert pids
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # its timers cannot fire, its word cannot come
    try:
        wait_for(lambda: all(backstop.run(rid)["status"] == "EXECUTING" for rid in run_ids), 120,
                 interval=0.2, what=f"the daemon's timer to resume {RUNS} runs of stopped "
                 "processes")
        assert not list(marks.iterdir())  # resumed in the store; their code has not gone on
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    resumed = _check_completed(backstop, run_ids)
    assert all("resumed_by" not in e["data"] for e in resumed), resumed
    assert _status(backstop)["executor"]["resumes"]["messages"] >= RUNS
