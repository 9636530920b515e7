"""An assignment's dates (executors/assignments.py): the run's creation and start and the
attempt's start, each as it is — formatted once when they are the same time (a run started
in its trigger's transaction), each its own when they differ (a queued run, a retry)."""

from __future__ import annotations

from pathlib import Path

from store_support import make_run

from trigger_local.durations import iso
from trigger_local.executors.assignments import assignment
from trigger_local.store.models import EXECUTING, Attempt, TaskDef, Version

T0 = 1_700_000_000.25


def _version() -> Version:
    return Version(id="version_1", project_dir="/proj", created_at=T0,
                   tasks=[TaskDef(task_id="hello", queue="task/hello", file="trigger/hello.py",
                                   export_name="hello")])


def _dates(created: float, started: float, attempt_started: float,
           tmp_path: Path) -> tuple[str | None, str | None, str | None]:
    run = make_run("run_a", status=EXECUTING, at=created, started_at=started)
    attempt = Attempt(id="attempt_a_1", run_id="run_a", number=1, status=EXECUTING,
                      started_at=attempt_started)
    ctx = assignment(run, attempt, _version(), "secret", tmp_path, [])["ctx"]
    return ctx["run"]["created_at"], ctx["run"]["started_at"], ctx["attempt"]["started_at"]


def test_one_time_for_a_run_started_as_it_was_made(tmp_path: Path) -> None:
    assert _dates(T0, T0, T0, tmp_path) == (iso(T0), iso(T0), iso(T0))


def test_each_date_its_own_when_they_differ(tmp_path: Path) -> None:
    assert _dates(T0, T0 + 1.5, T0 + 60, tmp_path) == (iso(T0), iso(T0 + 1.5), iso(T0 + 60))
    assert _dates(T0, T0 + 1.5, T0 + 1.5, tmp_path) == (iso(T0), iso(T0 + 1.5), iso(T0 + 1.5))
    assert _dates(T0, T0, T0 + 2, tmp_path) == (iso(T0), iso(T0), iso(T0 + 2))
