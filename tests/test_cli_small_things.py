"""Small things of the command line, each seen by an outside review: a retry line without
doubled punctuation, a sync task's traceback without thread plumbing, `runs show`'s Waiting line
in local time, `init` refs for names with nothing usable in them, doctor's CRIU line, the
schedules table's project, help texts, and `deploy --dry-run` flagging a python_version."""

from __future__ import annotations

import asyncio
import io
import os
import stat
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from rich.console import Console
from typer.testing import CliRunner

from trigger_local.cli.dev import waiting_note
from trigger_local.cli.doctor import check_criu
from trigger_local.cli.main import app
from trigger_local.cli.render import print_run
from trigger_local.cli.run_events import retry_text
from trigger_local.cli.schedules import schedules_table
from trigger_local.projects import check_project_ref
from trigger_local.runtime.execute import failure_from
from trigger_local.runtime.lifecycle import call_task
from trigger_local.sdk.tasks import Task

runner = CliRunner()


def test_a_retry_line_has_no_doubled_punctuation() -> None:
    error = {"name": "TaskProcessExited",
             "message": "The task process was killed by SIGKILL (killed, possibly out of memory)."}
    text = retry_text({"attempt": 1, "retry_in_s": 1.7}, error).plain
    assert ".;" not in text and text.endswith("possibly out of memory); retrying in 1.7s"), text


def test_a_sync_tasks_traceback_has_no_thread_plumbing() -> None:
    def users_code() -> None:
        raise ValueError("bad input")

    async def run_it() -> dict[str, object]:
        try:
            await asyncio.to_thread(users_code)
        except ValueError as exc:
            return failure_from(exc)
        raise AssertionError("no failure")

    stack = str(asyncio.run(run_it())["error"]["stack"])  # type: ignore[index]
    assert "users_code" in stack and "ValueError: bad input" in stack
    assert "threads.py" not in stack and "concurrent" not in stack, stack


def test_an_async_tasks_traceback_starts_at_the_task() -> None:
    """The runtime's own frames (lifecycle.py, which calls the task) are not the user's."""

    async def users_task(payload: dict[str, object], ctx: object) -> None:
        raise ValueError("bad input")

    task = Task(users_task, id="traceback-test")

    async def run_it() -> dict[str, object]:
        try:
            await call_task(task, {}, None)  # type: ignore[arg-type]
        except ValueError as exc:
            return failure_from(exc)
        raise AssertionError("no failure")

    stack = str(asyncio.run(run_it())["error"]["stack"])  # type: ignore[index]
    assert "users_task" in stack and "ValueError: bad input" in stack
    assert "lifecycle.py" not in stack, stack


@pytest.fixture
def tokyo() -> Iterator[None]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Asia/Tokyo"
    time.tzset()
    yield
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_runs_show_waiting_line_is_in_local_time(tokyo: None) -> None:
    run = {"id": "run_x", "taskIdentifier": "hello", "status": "QUEUED",
           "createdAt": "2026-11-29T22:00:00.000Z",
           "statusReason": "waiting for `trigger-local dev` in /p; it stopped at "
                           "2026-11-29T22:10:03.000Z"}
    console = Console(file=io.StringIO(), width=200)
    print_run(console, run)
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    waiting = next(line for line in shown.splitlines() if line.startswith("Waiting"))
    assert "2026-11-30 07:10:03" in waiting and "T22:10" not in waiting, waiting


def test_init_gives_distinct_valid_refs_to_names_with_nothing_usable(tmp_path: Path) -> None:
    refs = []
    for name in ("___", "日本"):
        root = tmp_path / name
        root.mkdir()
        result = runner.invoke(app, ["init", str(root)])
        assert result.exit_code == 0, result.output
        refs.append(tomllib.loads((root / "trigger.toml").read_text())["project"])
    assert refs[0] != refs[1] and all(check_project_ref(r) for r in refs), refs


def test_doctor_shows_a_clean_criu_line_not_criu_warnings(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "criu"  # a criu that passes with a warning, as 4.1 does here
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "Version: 4.1.1"; exit 0; fi\n'
                    'echo "Looks good."\necho "Can\'t check shutdown state of inet socket" >&2\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    check = check_criu()
    assert (check.level, check.detail) == ("ok", "`criu check` passed (CRIU 4.1.1)"), check


def test_schedules_table_names_each_schedules_project() -> None:
    item = {"id": "sched_1", "project": "proj_a", "task": "hello", "type": "IMPERATIVE",
            "generator": {"expression": "0 * * * *"}, "timezone": "UTC", "nextRun": None,
            "active": True}
    console = Console(file=io.StringIO(), width=200)
    console.print(schedules_table([item]))
    header, row = console.file.getvalue().splitlines()[:2]  # type: ignore[attr-defined]
    assert "PROJECT" in header and "proj_a" in row


def test_trigger_options_have_help() -> None:
    result = runner.invoke(app, ["trigger", "--help"], env={"COLUMNS": "200"})
    for flag, words in (("--concurrency-key", "same key share"),
                        ("--idempotency-key", "at most once"),
                        ("--max-attempts", "Attempts before")):
        line = next(line for line in result.output.splitlines() if flag in line)
        assert words in line, line


def test_migrate_help_says_to_stop_every_daemon_first() -> None:
    """Every PostgreSQL migration is refused beside a running daemon (docs/scaling.md,
    "Upgrading"): the help said migrating was safe while daemons run, but for migration 10."""
    result = runner.invoke(app, ["migrate", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "while daemons run" not in text and "Except migration 10" not in text, text
    assert "refused while another daemon runs on the database" in text, text
    assert "stop every daemon first" in text, text


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():  # a group (typer's own click)
        yield from _commands(sub, (*path, name))


def test_every_commands_summary_is_one_unbroken_sentence() -> None:
    """The first paragraph of a help is what `--help` lists: a line break inside it shows as a
    sentence cut in two (`down` was)."""
    commands = dict(_commands(typer.main.get_command(app)))
    assert ("down",) in commands and ("runs", "cancel") in commands
    broken = {" ".join(path): (command.help or "").split("\n\n")[0]
              for path, command in commands.items()
              if "\n" in (command.help or "").strip().split("\n\n")[0]}
    assert broken == {}


def test_deploy_dry_run_flags_a_python_version_other_than_this_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "trigger").mkdir()
    (tmp_path / "trigger.toml").write_text('project = "proj_d"\ndirs = ["trigger"]\n\n[build]\n'
                                           'python_version = "3.9"\n')
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["deploy", "--dry-run"])
    assert result.exit_code == 1, result.output
    assert "FROM " in result.stdout and "python_version is 3.9" in result.stderr, result.output


def test_dev_prints_bracketed_task_ids_and_paths_as_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A task id `x[/]` or a project under a folder named `[/]` made `dev` exit with a Rich
    MarkupError when it printed what it registered."""
    from trigger_local.cli.dev import register, show_project
    from trigger_local.config import ProjectConfig

    class Api:
        def register_version(self, **_: object) -> dict[str, object]:
            return {"id": "version_1", "tasks": [{"id": "x[/]"}, {"id": "[red]y"}]}

        def list_projects(self) -> dict[str, object]:
            return {"data": [{"ref": "proj_x", "key": "k"}]}

    root = tmp_path / "[/]dir"  # a folder "[" holding "]dir"
    root.mkdir(parents=True)
    config = ProjectConfig(root=root, project="proj_x")
    assert register(Api(), config, "proj_x") == "proj_x"  # type: ignore[arg-type]
    show_project(Api(), config, "proj_x")  # type: ignore[arg-type]
    said = capsys.readouterr().err
    assert "[red]y, x[/]" in said and f"({root})" in said, said


@pytest.mark.parametrize(("status", "line"), [("WAITING", "Times out"),
                                              ("TIMED_OUT", "Timed out"),
                                              ("COMPLETED", None)])
def test_tokens_show_names_the_timeout_only_while_it_matters(
        monkeypatch: pytest.MonkeyPatch, status: str, line: str | None) -> None:
    token = {"id": "waitpoint_x", "status": status, "createdAt": "2026-11-30T06:00:00Z",
             "timeoutAt": "2026-11-30T07:00:00Z"}
    if status == "COMPLETED":
        token["completedAt"] = "2026-11-30T06:05:00Z"

    class Api:
        def retrieve_token(self, token_id: str) -> dict[str, Any]:
            return token

    monkeypatch.setattr("trigger_local.cli.tokens.client", Api)
    result = runner.invoke(app, ["tokens", "show", "waitpoint_x"])
    assert result.exit_code == 0, result.output
    assert ("Times out" in result.output) == (line == "Times out"), result.output
    assert ("Timed out" in result.output) == (line == "Timed out"), result.output


def test_devs_stop_note_about_one_waiting_run_is_singular() -> None:
    assert waiting_note(1, False, "proj_a") == (
        "1 run of proj_a waiting: it keeps its place and goes on under the next "
        "`trigger-local dev`.")
    assert waiting_note(2, False, "proj_a").startswith("2 runs of proj_a waiting: they keep")
    assert waiting_note(1, True, "proj_a").startswith("1+ runs of proj_a waiting: they keep")


#: what Debian 12's CRIU 3.17 says to `criu check` on a 6.x kernel (~300 characters)
OLD_CRIU_SAYS = (
    "Warn  (criu/kerndat.c:1103): Can't keep kdat cache on non-tempfs\n"
    "Error (criu/vdso.c:194): vdso: Unexpected rt vDSO area bounds\n"
    "Error (criu/vdso.c:500): vdso: Failed to fill self vdso symtable\n"
    "Error (criu/kerndat.c:1906): kerndat_vdso_fill_symtable failed when initializing kerndat.\n"
    "Error (criu/crtools.c:254): Could not initialize kernel features detection.")


def old_criu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `criu` on PATH that fails its check as 3.17 does: only the message shape is tested
    with it (tests/e2e/test_criu_checkpoints.py runs the real CRIU 4)."""
    fake = tmp_path / "bin" / "criu"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\nif [ "$1" = "--version" ]; then echo "Version: 3.17"; exit 0; fi\n'
                    f"cat >&2 <<'EOF'\n{OLD_CRIU_SAYS}\nEOF\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    return fake


def test_a_failing_criu_check_is_one_short_line_with_criu_s_words_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """status and doctor printed CRIU's raw error (~300 characters) on the checkpoints line."""
    from trigger_local.executors import criu

    fake = old_criu(tmp_path, monkeypatch)
    found = asyncio.run(criu.check(str(fake)))
    assert not found.ok and found.version == "3.17"
    assert found.reason == ("`criu check` fails with CRIU 3.17; 4 or newer is needed: run "
                            "scripts/setup-criu.sh"), found.reason
    assert found.detail == OLD_CRIU_SAYS  # for the daemon log, status --json, doctor --verbose
    check = check_criu()
    assert (check.level, check.detail) == ("warn", "`criu check` failed (CRIU 3.17)"), check
    assert check.more == OLD_CRIU_SAYS and "setup-criu.sh" in check.fix
    assert criu.check_failed("4.1.1") == ("`criu check` fails with CRIU 4.1.1 on this host: "
                                          "`trigger-local doctor --verbose` shows CRIU's output")
