"""Watching runs from the terminal, against a real daemon and real task processes:
`trigger --wait` streams status changes and log lines while it waits (or is `--quiet`), says
the run goes on when Ctrl-C stops the wait, and `dev` prints each failed attempt's error, with
the end of the traceback (dimmed) when the run fails for good."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_cluster import free_port

from .conftest import DaemonProcess, wait_for, write_project

WATCH_TASKS = '''
from trigger_local import Retry, logger, task, wait

@task(id="greet")
async def greet(payload, ctx):
    name = payload.get("name", "world")
    logger.info("greeting", name=name)
    return {"message": f"Hello, {name}!"}

@task(id="flaky", retry=Retry(max_attempts=3, min_timeout_s=0.1, max_timeout_s=0.2, factor=1))
async def flaky(payload, ctx):
    logger.info("trying", attempt=ctx.attempt.number)
    if ctx.attempt.number < 3:
        raise RuntimeError(f"failure number {ctx.attempt.number}")
    return {"attempt": ctx.attempt.number}

def check(payload):
    raise ValueError("the payload is never good enough")

@task(id="always-fails", retry=Retry(max_attempts=2, min_timeout_s=0.1, max_timeout_s=0.1))
async def always_fails(payload, ctx):
    check(payload)

@task(id="gate")
async def gate(payload, ctx):
    logger.info("waiting at the gate")
    result = await wait.for_token(payload["token"])
    logger.info("through the gate")
    return {"passed": result.output}

@task(id="escapes", retry=Retry(max_attempts=1))
async def escapes(payload, ctx):
    logger.info("title \x1b]0;pwned\x07 clear \x1b[2J")
    raise RuntimeError("bell \x07 and \x1b[31mred")

@task(id="escapes-kept", retry=Retry(max_attempts=1))
async def escapes_kept(payload, ctx):
    logger.info("attributed", **{"key \x1b]0;pwned\x07": 1})
    return "output \x1b]0;pwned\x07 clear \x1b[2J"

@task(id="markup-error", retry=Retry(max_attempts=1))
async def markup_error(payload, ctx):
    raise RuntimeError("closes [/oops] and \x1b[2J")

@task(id="quick-gate")
async def quick_gate(payload, ctx):
    return {"passed": (await wait.for_token(payload["token"])).output}
'''


@pytest.fixture
def watched(daemon: DaemonProcess, tmp_path: Path) -> DaemonProcess:
    daemon.register(write_project(tmp_path / "watchproj", WATCH_TASKS))
    return daemon


def _env(d: DaemonProcess, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    return {**env, "TRIGGER_LOCAL_HOME": str(d.home), "PYTHONUNBUFFERED": "1", "COLUMNS": "200",
            **extra}


def cli(d: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "trigger_local", *args], capture_output=True,
                          text=True, env=_env(d), timeout=90)


class Live:
    """A CLI process whose stderr (or merged output) is collected line by line as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.err: list[str] = []
        self.out: list[str] = []
        self.readers = [threading.Thread(target=self._read, args=(stream, sink), daemon=True)
                        for stream, sink in ((self.proc.stderr, self.err),
                                             (self.proc.stdout, self.out))]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, sink: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            sink.append(line)

    def stderr(self) -> str:
        return "".join(self.err)

    def stdout(self) -> str:
        return "".join(self.out)

    def wait(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout)
        for reader in self.readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait()


@pytest.fixture
def live() -> Iterator[list[Live]]:
    started: list[Live] = []
    yield started
    for process in started:
        process.close()


def _token(d: DaemonProcess) -> str:
    r = d.api("POST", "/api/v1/waitpoints/tokens", json={"timeout": "10m"})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def test_trigger_without_payload_sends_an_empty_object(watched: DaemonProcess) -> None:
    r = cli(watched, "trigger", "greet", "--wait")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"message": "Hello, world!"}


def test_trigger_wait_streams_status_changes_and_logs_while_waiting(watched: DaemonProcess,
                                                                     live: list[Live]) -> None:
    token = _token(watched)
    watch = Live([sys.executable, "-m", "trigger_local", "trigger", "gate", "--payload",
                  json.dumps({"token": token}), "--wait"], _env(watched))
    live.append(watch)
    wait_for(lambda: "waiting at the gate" in watch.stderr(), 60,
             what="the log line while the run waits")
    wait_for(lambda: "WAITING" in watch.stderr(), 30, what="the WAITING status while the run waits")
    assert watch.proc.poll() is None  # still waiting: these lines came live, not at the end
    assert watched.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete",
                       json={"data": "open"}).status_code == 200
    assert watch.wait() == 0, watch.stderr()
    err = watch.stderr()
    assert (err.index("EXECUTING") < err.index("waiting at the gate")
            < err.index("through the gate") < err.index("COMPLETED")), err
    assert json.loads(watch.stdout()) == {"passed": "open"}  # stdout: the output only


def test_trigger_wait_shows_the_run_executing_again_after_a_wait(watched: DaemonProcess,
                                                                 live: list[Live]) -> None:
    """A run that returns as soon as its token is completed is over before the watch could read
    it: the watch still shows it going back to EXECUTING, as for its first start."""
    token = _token(watched)
    watch = Live([sys.executable, "-m", "trigger_local", "trigger", "quick-gate", "--payload",
                  json.dumps({"token": token}), "--wait"], _env(watched))
    live.append(watch)
    wait_for(lambda: "WAITING" in watch.stderr(), 60, what="the WAITING status")
    assert watched.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete",
                       json={"data": "open"}).status_code == 200
    assert watch.wait() == 0, watch.stderr()
    statuses = [line.split()[1] for line in watch.stderr().splitlines()
                if re.match(r"\d\d:\d\d:\d\d [A-Z]+$", line)]
    assert statuses == ["EXECUTING", "WAITING", "EXECUTING", "COMPLETED"], watch.stderr()


def test_trigger_wait_on_an_existing_run_of_its_idempotency_key_ends(
        watched: DaemonProcess) -> None:
    """The same idempotency key again answers with the run that already completed: its events
    all came before the watch's cursor, so the watch reads the run instead of waiting for an
    end that has been (it waited for good)."""
    first = cli(watched, "trigger", "greet", "--idempotency-key", "once", "--wait")
    assert first.returncode == 0, first.stderr
    again = cli(watched, "trigger", "greet", "--idempotency-key", "once", "--wait")
    assert again.returncode == 0, again.stderr
    assert "an existing run" in again.stderr and "COMPLETED" in again.stderr, again.stderr
    assert json.loads(again.stdout) == json.loads(first.stdout)


def test_trigger_wait_shows_each_failed_attempt_then_the_output(watched: DaemonProcess) -> None:
    r = cli(watched, "trigger", "flaky", "--wait")
    assert r.returncode == 0, r.stderr
    assert "attempt 1 failed: RuntimeError: failure number 1" in r.stderr
    assert "attempt 2 failed: RuntimeError: failure number 2" in r.stderr
    assert "trying attempt=3" in r.stderr and "COMPLETED" in r.stderr
    assert json.loads(r.stdout) == {"attempt": 3}


def test_trigger_wait_quiet_prints_only_the_output(watched: DaemonProcess) -> None:
    r = cli(watched, "trigger", "flaky", "--wait", "--quiet")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert json.loads(r.stdout) == {"attempt": 3}


def test_trigger_wait_on_a_failed_run_exits_1_with_the_error(watched: DaemonProcess) -> None:
    r = cli(watched, "trigger", "always-fails", "--wait")
    assert r.returncode == 1
    assert "FAILED: ValueError: the payload is never good enough" in r.stderr
    assert ("in check" in r.stderr
            and 'raise ValueError("the payload is never good enough")' in r.stderr)
    assert "runs show run_" in r.stderr and r.stdout == ""
    quiet = cli(watched, "trigger", "always-fails", "--wait", "--quiet")
    assert (quiet.returncode == 1
            and "FAILED: ValueError: the payload is never good enough" in quiet.stderr)


def test_ctrl_c_stops_waiting_and_says_how_to_follow_the_run(watched: DaemonProcess,
                                                             live: list[Live]) -> None:
    watch = Live([sys.executable, "-m", "trigger_local", "trigger", "gate", "--payload",
                  json.dumps({"token": _token(watched)}), "--wait"], _env(watched))
    live.append(watch)
    wait_for(lambda: "waiting at the gate" in watch.stderr(), 60, what="the run to wait")
    run_id = watch.stderr().split(" as ", 1)[1].split(";", 1)[0]
    watch.proc.send_signal(signal.SIGINT)
    assert watch.wait() == 130
    follow = f"The run goes on: follow it with `trigger-local runs logs {run_id} --follow`"
    assert follow in watch.stderr()
    assert "Traceback" not in watch.stderr()
    assert watched.run(run_id)["status"] == "WAITING"


def test_dev_prints_each_attempts_error_and_the_final_traceback_dimmed(watched: DaemonProcess,
                                                                       tmp_path: Path,
                                                                       live: list[Live]) -> None:
    env = _env(watched, FORCE_COLOR="1", TERM="xterm-256color")
    dev = Live([sys.executable, "-m", "trigger_local", "dev"], env, cwd=tmp_path / "watchproj")
    live.append(dev)
    wait_for(lambda: "Registered" in dev.stderr(), 60, what="dev to register the project")
    flaky, failing = watched.trigger("flaky", {}), watched.trigger("always-fails", {})
    watched.wait_status(flaky), watched.wait_status(failing)
    wait_for(lambda: f"{failing} always-fails" in dev.stderr() and "FAILED" in dev.stderr()
             and "raise ValueError" in dev.stderr(), 30, what="dev to print the failure")
    wait_for(lambda: "failure number 2" in dev.stderr(), 30,
             what="dev to print flaky's second failure")
    text = dev.stderr()
    plain = _strip_ansi(text)
    assert f"{flaky} flaky attempt 1 failed: RuntimeError: failure number 1; retrying in" in plain
    never = "ValueError: the payload is never good enough"
    assert f"{failing} always-fails attempt 1 failed: {never}" in plain
    assert f"{failing} always-fails FAILED: ValueError: the payload is never good enough" in plain
    # the user's frames, not ours
    assert "in check" in plain and "trigger_local/runtime" not in plain
    frame = next(line for line in text.splitlines() if "in check" in line)
    style = re.match(r"\x1b\[([0-9;]*)m\s*File", frame)
    assert style and style.group(1).split(";") == ["2"], repr(frame)  # dim, and only dim


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@pytest.mark.parametrize("command", ["trigger", "follow"])
def test_a_watch_says_when_the_daemon_is_lost_and_back(watched: DaemonProcess, live: list[Live],
                                                       command: str) -> None:
    """The daemon is killed under `trigger --wait` (or `runs logs --follow`) of a waiting run:
    the watch says the daemon is lost and how to bring it back, once, instead of waiting in
    silence for a daemon that may never come; it says when the daemon answers again, and ends
    as usual when the run does."""
    token = _token(watched)
    if command == "trigger":
        argv = ["trigger", "gate", "--payload", json.dumps({"token": token}), "--wait"]
    else:
        r = watched.api("POST", "/api/v1/tasks/gate/trigger", json={"payload": {"token": token}})
        argv = ["runs", "logs", r.json()["id"], "--follow"]
    watch = Live([sys.executable, "-m", "trigger_local", *argv], _env(watched))
    live.append(watch)
    wait_for(lambda: "waiting at the gate" in watch.stderr() + watch.stdout(), 60,
             what="the run to wait at the gate")
    watched.kill9()
    wait_for(lambda: "Lost the daemon" in watch.stderr() or watch.proc.poll() is not None, 30,
             what="the watch to say the daemon is lost")
    assert watch.proc.poll() is None, watch.stderr()
    lost = [line for line in watch.stderr().splitlines() if "Lost the daemon" in line]
    assert len(lost) == 1 and watched.url in lost[0] and "trigger-local up" in lost[0], lost
    watched.start()  # the same home: the same port again
    wait_for(lambda: "answers again" in watch.stderr() or watch.proc.poll() is not None, 30,
             what="the watch to say the daemon is back")
    r = watched.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": 1})
    assert r.status_code == 200, r.text
    assert watch.wait(60) == 0, watch.stderr()
    assert "Traceback" not in watch.stderr() and "COMPLETED" in watch.stderr(), watch.stderr()
    assert watch.stderr().count("Lost the daemon") == 1, watch.stderr()


def test_a_watch_follows_the_daemon_back_on_another_port(watched: DaemonProcess,
                                                          live: list[Live]) -> None:
    """The daemon is killed under `trigger --wait` and started again from the same home on
    another port (the old one taken, or `up --port`): the watch finds it there (the home's
    daemon.json, as a task process does), says it answers again at its new address and ends
    with the run. It used to knock on the old port for ever, though its "Lost the daemon"
    line promised that the wait goes on when the daemon answers."""
    token = _token(watched)
    argv = ["trigger", "gate", "--payload", json.dumps({"token": token}), "--wait"]
    watch = Live([sys.executable, "-m", "trigger_local", *argv], _env(watched))
    live.append(watch)
    wait_for(lambda: "waiting at the gate" in watch.stderr() + watch.stdout(), 60,
             what="the run to wait at the gate")
    old_url = watched.url
    watched.kill9()
    wait_for(lambda: "Lost the daemon" in watch.stderr() or watch.proc.poll() is not None, 30,
             what="the watch to say the daemon is lost")
    watched.port = free_port()
    watched.start()
    assert watched.url != old_url
    wait_for(lambda: "answers again" in watch.stderr() or watch.proc.poll() is not None, 30,
             what="the watch to say the daemon is back")
    back = [line for line in watch.stderr().splitlines() if "answers again" in line]
    assert len(back) == 1 and watched.url in back[0], watch.stderr()
    r = watched.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": 1})
    assert r.status_code == 200, r.text
    assert watch.wait(60) == 0, watch.stderr()
    assert "Traceback" not in watch.stderr() and "COMPLETED" in watch.stderr(), watch.stderr()


def test_a_tasks_control_characters_are_shown_not_obeyed(watched: DaemonProcess) -> None:
    """A log line or an error message holding terminal escapes (which a task may log from its
    payload) was printed raw by `trigger --wait`, `runs logs` and `runs show`: it could retitle
    the window or clear the screen. Each is shown as its escape (`\\x1b`)."""
    r = cli(watched, "trigger", "escapes", "--wait")
    run_id = re.search(r"run_[0-9a-z]+", r.stdout + r.stderr)
    assert r.returncode == 1 and run_id, r.stderr
    said = r.stdout + r.stderr
    for command in (("runs", "logs", run_id[0]), ("runs", "show", run_id[0])):
        shown = cli(watched, *command)
        assert shown.returncode == 0, shown.stderr
        said += shown.stdout + shown.stderr
    assert "\x1b" not in said and "\x07" not in said, repr(said)
    assert "title \\x1b]0;pwned\\x07 clear \\x1b[2J" in said, said
    assert "bell \\x07 and \\x1b[31mred" in said, said


def test_outputs_attribute_keys_token_data_and_quiet_errors_are_shown_not_obeyed(
        watched: DaemonProcess) -> None:
    """What 97e26a8 left raw: a run's output that is a string (`trigger --wait`, `runs show`),
    a log line's attribute key (`runs logs`), a token's output (`tokens show`: the data its
    completer sent, from anywhere its callback URL went), and the error of `trigger --wait
    -q`, which Rich also read as markup: "[/oops]" was a MarkupError and a traceback."""
    r = cli(watched, "trigger", "escapes-kept", "--wait")
    assert r.returncode == 0, r.stderr
    said = r.stdout + r.stderr
    run_id = re.search(r"run_[0-9a-z]+", said)
    assert run_id, said
    for command in (("runs", "logs", run_id[0]), ("runs", "show", run_id[0])):
        shown = cli(watched, *command)
        assert shown.returncode == 0, shown.stderr
        said += shown.stdout + shown.stderr
    assert "output \\x1b]0;pwned\\x07 clear \\x1b[2J" in said, said
    assert "key \\x1b]0;pwned\\x07" in said, said
    quiet = cli(watched, "trigger", "markup-error", "--wait", "-q")
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr, quiet.stderr
    assert "RuntimeError: closes [/oops] and \\x1b[2J" in quiet.stderr, quiet.stderr
    said += quiet.stdout + quiet.stderr
    token = watched.api("POST", "/api/v1/waitpoints/tokens", json={}).json()["id"]
    done = watched.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete",
                       json={"data": "data \x1b]0;pwned\x07"})
    assert done.status_code == 200, done.text
    shown = cli(watched, "tokens", "show", token)
    assert shown.returncode == 0 and "data \\x1b]0;pwned\\x07" in shown.stdout, shown.stdout
    said += shown.stdout + shown.stderr
    assert "\x1b" not in said and "\x07" not in said, repr(said)
