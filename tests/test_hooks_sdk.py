"""The SDK side of lifecycle hooks without a daemon: registration rules, catch_error's answers,
locals outside a run, and the init.py a task process imports first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from trigger_local import Retry, ValidationError, locals, task, tasks
from trigger_local.runtime.indexer import load_project
from trigger_local.sdk import registry
from trigger_local.sdk.hooks import GLOBAL, Decision, decision_from


@pytest.fixture(autouse=True)
def _clean() -> None:
    registry.clear()


def test_a_global_hook_registered_again_replaces_it_in_place() -> None:
    def first() -> None: ...
    def second() -> None: ...
    def third() -> None: ...

    tasks.on_start("a", first)
    tasks.on_start("b", second)
    tasks.on_start("a", third)
    assert GLOBAL.of("on_start") == [("a", third), ("b", second)]
    registry.clear()
    assert GLOBAL.of("on_start") == []


def test_a_task_has_one_hook_per_kind_and_refuses_unknown_options() -> None:
    @task(id="t", on_success=lambda: 1)
    async def t(payload: object) -> None: ...

    @t.on_success
    def later() -> None: ...

    assert [fn for _, fn in t.hooks.of("on_success")] == [later]
    with pytest.raises(ValidationError, match="unknown option 'on_sucess'"):
        task(id="u", on_sucess=lambda: 1)
    t.catch_error(lambda: None)
    assert len(t.hooks.of("catch_error")) == 1
    t.add_hook("handle_error", lambda: None)  # Trigger.dev's old name
    assert len(t.hooks.of("catch_error")) == 1


@pytest.mark.parametrize(("answer", "expected"), [
    (None, None),
    ({}, None),
    ({"skip_retrying": True}, Decision(False)),
    ({"retry_delay_in_ms": 1500}, Decision(True, 1.5)),
    ({"retry": Retry(max_attempts=1)}, Decision(False)),
    ({"retry": {"max_attempts": 5, "min_timeout_s": 2, "factor": 3, "max_timeout_s": 60}},
     Decision(True, 6.0)),
])
def test_catch_error_answers(answer: object, expected: Decision | None) -> None:
    assert decision_from(answer, 2, True) == expected


def test_catch_error_retry_at_and_error_override() -> None:
    error = KeyError("x")
    at = decision_from({"retry_at": datetime.now(UTC) + timedelta(seconds=10), "error": error},
                       1, True)
    assert at is not None and at.retry and 8 < (at.delay_s or 0) <= 10 and at.error is error
    assert decision_from({"error": error}, 1, True) == Decision(False, None, error)
    with pytest.raises(ValidationError):
        decision_from("retry please", 1, True)


def test_locals_outside_a_run() -> None:
    key = locals.create("db")
    assert locals.get(key) is None
    with pytest.raises(RuntimeError, match="inside a task run"):
        locals.set(key, 1)


def test_a_task_process_imports_init_py_first(tmp_path: Path) -> None:
    (tmp_path / "trigger").mkdir()
    (tmp_path / "trigger" / "init.py").write_text(
        "from trigger_local import tasks\ntasks.on_success('g', lambda: None)\n")
    (tmp_path / "trigger" / "a.py").write_text(
        "from trigger_local import task\n@task(id='a')\nasync def a(payload): ...\n")
    modules = load_project(tmp_path, ["trigger"], ["trigger/a.py"])
    assert [m.__name__ for m in modules] == ["trigger.init", "trigger.a"]
    assert [name for name, _ in GLOBAL.of("on_success")] == ["g"]
