"""What the CLI says, against a real daemon: token completion that changed nothing says so,
`doctor` and `status` read as text (no glued words, no Python dicts, each line once), `runs
replay` says one whole line on a terminal, and shell completion offers the daemon's task ids, run
ids, token ids and queue names."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trigger_local.cli import completion
from trigger_local.errors import BadRequestError
from trigger_local.sdk import client as client_module

from .conftest import DaemonProcess


def cli(d: DaemonProcess, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    env.update({"TRIGGER_LOCAL_HOME": str(d.home), "COLUMNS": "200", **extra_env})
    # the installed entry point: shell completion answers only to its own program name
    program = Path(sys.executable).with_name("trigger-local")
    argv = [str(program)] if program.exists() else [sys.executable, "-m", "trigger_local"]
    return subprocess.run([*argv, *args], capture_output=True, text=True, env=env, timeout=90)


def _token(d: DaemonProcess) -> str:
    r = d.api("POST", "/api/v1/waitpoints/tokens", json={"timeout": "10m"})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_completing_a_finished_token_fails_saying_nothing_changed(daemon: DaemonProcess) -> None:
    """The API answers success (Trigger.dev's idempotent answer); the CLI says plainly that
    nothing happened, in one line, and exits 1."""
    token = _token(daemon)
    first = cli(daemon, "tokens", "complete", token, "--data", '{"ok": true}')
    assert first.returncode == 0 and f"Completed {token}." in first.stderr, first.stderr
    again = cli(daemon, "tokens", "complete", token, "--data", '{"ok": false}')
    assert again.returncode == 1, again.stderr
    assert f"{token} was already completed at " in again.stderr, again.stderr
    assert "nothing was completed" in again.stderr and "Completed" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and "Traceback" not in again.stderr
    timed = cli(daemon, "tokens", "timeout", token)
    assert timed.returncode == 1 and "was already completed" in timed.stderr, timed.stderr
    assert "nothing was timed out" in timed.stderr and "Timed out" not in timed.stderr
    output = str(daemon.api("GET", f"/api/v1/waitpoints/tokens/{token}").json()["output"])
    assert "true" in output and "false" not in output  # the first completion's data stayed


def test_a_timed_out_token_cannot_be_completed_and_says_so(daemon: DaemonProcess) -> None:
    token = _token(daemon)
    timed = cli(daemon, "tokens", "timeout", token)
    assert timed.returncode == 0 and f"Timed out {token}." in timed.stderr, timed.stderr
    late = cli(daemon, "tokens", "complete", token, "--data", "1")
    assert late.returncode == 1, late.stderr
    assert f"{token} timed out at " in late.stderr, late.stderr
    assert "nothing was completed" in late.stderr and "Traceback" not in late.stderr
    assert len(late.stderr.strip().splitlines()) == 1, late.stderr
    # the API's answer stays Trigger.dev's: 200 {"success": true} (and ours: nothing changed)
    r = daemon.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": 1})
    assert r.status_code == 200 and r.json() == {"success": True, "changed": False}, r.text
    assert daemon.api("GET", f"/api/v1/waitpoints/tokens/{token}").json()["status"] == "TIMED_OUT"


def test_doctor_separates_every_check_name_from_its_detail(daemon: DaemonProcess) -> None:
    r = cli(daemon, "doctor")
    names = ("Python", "SQLite", "Home", "Port", "Docker", "CRIU", "Checkpoints")
    lines = [line for line in r.stdout.splitlines() if line[:5].strip() in ("ok", "warn", "FAIL")]
    # the longest name, with a daemon up
    assert any("Checkpoints" in line for line in lines), r.stdout
    for line in lines:
        name = line[5:].split()[0]
        assert name in names, line
        assert line[5:].startswith(name + " "), f"name glued to its detail: {line!r}"


def test_status_reads_as_text_not_python_dicts(daemon: DaemonProcess) -> None:
    r = cli(daemon, "status")
    assert r.returncode == 0, r.stderr
    for mark in ("{", "}", "'", "name="):
        assert mark not in r.stdout, r.stdout
    executor = next(line for line in r.stdout.splitlines() if line.strip().startswith("executor"))
    assert executor.split() == ["executor", "process"], r.stdout


def test_status_says_what_it_counts_once_and_keeps_its_json(daemon: DaemonProcess) -> None:
    """An outside look read "resumes messages 0 answers 0", and "checkpoint yes" next to
    "checkpoints available yes": each line now says what it counts, once; `--json` (other
    tools read it) keeps the daemon's field names."""
    r = cli(daemon, "status")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()[1:]  # after "running at URL"
    labels = [line.strip().split("  ")[0] for line in lines]
    assert len(labels) == len(set(labels)), r.stdout
    for jargon in ("resumes", "messages 0", "answers", "held runs", "after s", "max held"):
        assert jargon not in r.stdout, (jargon, r.stdout)
    assert "runs resumed in their process" in r.stdout, r.stdout
    # whether waiting runs are checkpointed: one line
    assert len([line for line in lines if line.split()[0] == "checkpoint"
                or "available" in line.split()]) == 1, r.stdout
    document = json.loads(cli(daemon, "status", "--json").stdout)
    executor = document["executor"]
    assert executor["resumes"] == {"messages": 0, "answers": 0}, executor
    assert "checkpoint" in executor and "available" in executor["checkpoints"], executor
    assert "max_held" in executor["eviction"] and "held_runs" in executor, executor


@pytest.fixture
def completing(daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch) -> DaemonProcess:
    """The completion callbacks, in this process, finding the test daemon by its home."""
    for name in ("TRIGGER_API_URL", "TRIGGER_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(daemon.home))
    client_module.configure()
    return daemon


def test_completion_offers_the_daemons_ids(completing: DaemonProcess, project: Path) -> None:
    completing.register(project)
    run_id = completing.trigger("hello", {"name": "tab"})
    token = _token(completing)
    assert ("hello", "trigger/tasks.py") in completion.complete_task("he")
    assert all(value.startswith("he") for value, _ in completion.complete_task("he"))
    runs = dict(completion.complete_run_id("run_"))
    assert run_id in runs and runs[run_id].startswith("hello ")
    assert dict(completion.complete_token_id(""))[token] == "WAITING"
    assert "hello" in dict(completion.complete_queue("hel"))


def test_shell_completion_of_a_task_id_end_to_end(ready: DaemonProcess) -> None:
    """What bash runs on Tab: the program itself, with the words in the environment."""
    r = cli(ready, _TRIGGER_LOCAL_COMPLETE="complete_bash",
            COMP_WORDS="trigger-local trigger sync-h", COMP_CWORD="2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["sync-hello"] and r.stderr == ""


def test_completion_with_no_daemon_is_fast_and_silent(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("TRIGGER_API_URL", "TRIGGER_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(tmp_path / "no-daemon-here"))
    client_module.configure()
    started = time.monotonic()
    for complete in (completion.complete_task, completion.complete_run_id,
                     completion.complete_token_id, completion.complete_queue):
        assert complete("") == []
    assert time.monotonic() - started < 4 * completion.TIMEOUT_S
    assert capsys.readouterr() == ("", "")


def test_envvars_stored_under_a_ref_no_project_has_are_listed_and_deleted(
        daemon: DaemonProcess) -> None:
    """Variables left under a ref no project has (stored before such writes were refused, or
    copied to `proj_local` by the migration to per-project variables) are reachable from the
    CLI: listed and deleted, after which the ref is unknown again."""
    daemon.stop()
    with sqlite3.connect(daemon.home / "trigger-local.db") as db:
        db.execute("INSERT INTO env_vars (project, env, name, value, is_secret, updated_at) "
                   "VALUES ('proj_gone', 'dev', 'OLD', 'v', 0, 0)")
    daemon.start()
    listed = cli(daemon, "envvars", "ls", "--project", "proj_gone", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [v["name"] for v in json.loads(listed.stdout)] == ["OLD"]
    deleted = cli(daemon, "envvars", "delete", "OLD", "--project", "proj_gone")
    assert deleted.returncode == 0 and "Deleted OLD." in deleted.stderr, deleted.stderr
    gone = cli(daemon, "envvars", "ls", "--project", "proj_gone")
    assert gone.returncode == 1 and "No project 'proj_gone'" in gone.stderr, gone.stderr
    unnamed = cli(daemon, "envvars", "ls")
    assert unnamed.returncode == 1 and "--project REF" in unnamed.stderr, unnamed.stderr


def _cli_on_a_terminal(d: DaemonProcess, *args: str) -> tuple[int, str, str]:
    """`cli` with stdout on a pseudo-terminal (as a person at a shell has it); stderr piped."""
    import pty

    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    env.update({"TRIGGER_LOCAL_HOME": str(d.home), "COLUMNS": "200"})
    program = Path(sys.executable).with_name("trigger-local")
    argv = [str(program)] if program.exists() else [sys.executable, "-m", "trigger_local"]
    main, terminal = pty.openpty()
    try:
        done = subprocess.run([*argv, *args], stdout=terminal, stderr=subprocess.PIPE,
                              text=True, env=env, timeout=90)
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the terminal's other end is closed and all was read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(main)
    return done.returncode, shown.decode().replace("\r\n", "\n"), done.stderr


def test_replay_says_one_whole_line_on_a_terminal_and_the_id_alone_to_a_pipe(
        daemon: DaemonProcess, project: Path) -> None:
    """On a terminal "Replayed X as:" (stderr) then the id (stdout) read as a line cut off; a
    script's `$(trigger-local runs replay RUN)` still gets the new id alone (README)."""
    daemon.register(project)
    run_id = daemon.trigger("hello", {"name": "again"})
    code, shown, said = _cli_on_a_terminal(daemon, "runs", "replay", run_id)
    assert code == 0, said
    words = shown.split()
    assert words[:3] == ["Replayed", run_id, "as"] and len(words) == 4, (shown, said)
    assert words[3].startswith("run_") and words[3] != run_id and not said.strip(), (shown, said)
    piped = cli(daemon, "runs", "replay", run_id)
    assert piped.returncode == 0, piped.stderr
    new_id = piped.stdout.strip()
    assert new_id.startswith("run_") and new_id != run_id and "\n" not in new_id, piped.stdout
    assert piped.stderr.strip() == f"Replayed {run_id} as {new_id}", piped.stderr
    assert daemon.run(new_id)["id"] == new_id


def test_deleting_a_variable_a_project_lacks_names_both_and_how_to_list(
        ready: DaemonProcess) -> None:
    """`envvars delete` of a name the project does not have (a typo): the error names the
    variable, the project and the env, and how to list them. It said "Error: Environment
    variable not found" alone."""
    r = ready.api("POST", "/api/v1/projects/proj_test/envvars/dev",
                  json={"name": "API_KEY", "value": "v"})
    assert r.status_code == 200, r.text
    typo = cli(ready, "envvars", "delete", "API_KEYS", "--project", "proj_test")
    assert typo.returncode == 1, typo.stderr
    assert typo.stderr.strip() == ("Error: proj_test has no variable 'API_KEYS' in dev. List "
                                   "them with `trigger-local envvars ls --project proj_test`."), \
        typo.stderr
    deleted = cli(ready, "envvars", "delete", "API_KEY", "--project", "proj_test")
    assert deleted.returncode == 0 and "Deleted API_KEY." in deleted.stderr, deleted.stderr


def test_a_schedule_not_found_says_how_to_list_them(daemon: DaemonProcess) -> None:
    """As a run, token or queue not found does (it said "Error: Schedule not found" alone)."""
    for args in (("show", "sched_nope"), ("delete", "sched_nope"), ("activate", "sched_nope")):
        r = cli(daemon, "schedules", *args)
        assert r.returncode == 1, r.stderr
        assert r.stderr.strip() == ("Error: Schedule not found. List them with `trigger-local "
                                    "schedules ls`."), (args, r.stderr)


def test_an_empty_filter_or_queue_is_a_usage_error_naming_the_option(
        ready: DaemonProcess) -> None:
    """`runs ls --tag ""` listed every run and `trigger --queue ""` used the task's own queue,
    both in silence."""
    ready.wait_status(ready.trigger("hello", {}))
    for args, option in ((("runs", "ls", "--tag", ""), "--tag"),
                         (("runs", "ls", "--task", ""), "--task"),
                         (("runs", "ls", "--task", "hello", "--task", " "), "--task"),
                         (("runs", "ls", "--project", ""), "--project"),
                         (("runs", "ls", "--status", ","), "--status"),
                         (("trigger", "hello", "--queue", ""), "--queue"),
                         (("trigger", "hello", "--queue", " \t"), "--queue"),
                         (("trigger", "hello", "--tag", ""), "--tag")):
        r = cli(ready, *args)
        assert r.returncode == 2 and r.stdout == "", (args, r.stdout, r.stderr)
        assert f"Invalid value for {option}" in r.stderr.replace("'", "") \
            and "must not be empty" in r.stderr, (args, r.stderr)
    # the SDK's queue= option: the daemon refuses a blank name as it does an empty one
    api = client_module.SyncApiClient(ready.url, ready.key)
    try:
        for name in ("", " ", "\t", "\u3000"):
            with pytest.raises(BadRequestError, match="^options.queue.name must not be empty or "
                                                      "only whitespace$"):
                api.trigger("hello", None, options={"queue": name})
    finally:
        api.close()
    assert len(ready.api("GET", "/api/v1/runs").json()["data"]) == 1  # nothing triggered
    assert cli(ready, "runs", "ls", "--task", "hello").returncode == 0
