"""The command line where no daemon is needed: argument handling, error paths, init, doctor."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest
import typer
from pg_cluster import free_port
from typer.testing import CliRunner

from trigger_local.cli.main import app
from trigger_local.config import database_url_problem
from trigger_local.sdk import client as client_module


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(home))
    monkeypatch.delenv("TRIGGER_SECRET_KEY", raising=False)
    # A port nobody listens on, so "not running" holds even if a real daemon uses 8030.
    monkeypatch.setenv("TRIGGER_API_URL", f"http://127.0.0.1:{free_port()}")
    client_module.configure()
    yield home
    client_module.configure()


runner = CliRunner()


@pytest.mark.parametrize("args", [["runs", "ls"], ["runs", "show", "run_x"], ["status"],
                                  ["trigger", "hello", "--payload", "{}"],
                                  ["queues", "ls", "--json"],
                                  ["tokens", "complete", "waitpoint_x", "--data", "1"]])
def test_daemon_not_running_exits_1_with_how_to_start_it(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "not running" in result.stderr
    assert "trigger-local up" in result.stderr
    assert result.stdout == ""


def test_daemon_json_address_is_named_in_the_hint(isolated: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRIGGER_API_URL")
    isolated.mkdir(parents=True)
    url = f"http://127.0.0.1:{free_port()}"
    (isolated / "daemon.json").write_text(json.dumps({"url": url, "pid": 1}))
    result = runner.invoke(app, ["runs", "ls"])
    assert result.exit_code == 1
    assert url in result.stderr


def test_bad_duration_option_is_a_usage_error() -> None:
    result = runner.invoke(app, ["trigger", "hello", "--max-duration", "ten minutes"])
    assert result.exit_code == 2
    assert "Invalid --max-duration" in result.stderr


def test_unknown_status_filter_lists_the_valid_ones() -> None:
    result = runner.invoke(app, ["runs", "ls", "--status", "DONE"])
    assert result.exit_code == 2
    assert "COMPLETED" in result.stderr


def test_init_writes_the_project_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 0, result.stderr
    toml = (tmp_path / "trigger.toml").read_text()
    example = (tmp_path / "trigger" / "example.py").read_text()
    assert 'dirs = ["trigger"]' in toml
    assert "await wait.for_(seconds=5)" in example
    assert "trigger_and_wait" in example and ".unwrap()" in example
    assert "Retry(max_attempts=3, min_timeout_s=1)" in example
    assert 'return {"message": f"Hello, {name}!"}' in example
    compile(example, "example.py", "exec")


def test_init_written_config_loads(tmp_path: Path) -> None:
    from trigger_local.config import find_project_root, load_project

    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    assert find_project_root(tmp_path / "trigger") == tmp_path
    assert load_project(tmp_path).dirs == ["trigger"]


@pytest.mark.parametrize("where", ["a-file/sub", "a-file", "trigger-is-a-file"])
def test_init_where_nothing_can_be_written_is_one_line(tmp_path: Path, where: str) -> None:
    """`init PATH` under a file (or in /proc, or on a read-only mount) was a traceback, exit 120."""
    (tmp_path / "a-file").write_text("x")
    target = tmp_path / where
    if where == "trigger-is-a-file":
        target.mkdir()
        (target / "trigger").write_text("a file where the tasks' folder goes")
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "Error: Cannot write" in result.stderr and "directory you can write to" in \
        result.stderr, result.stderr


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / "trigger.toml").write_text("# mine\n")
    result = runner.invoke(app, ["init", str(tmp_path)])
    assert result.exit_code == 1
    assert "--force" in result.stderr
    assert (tmp_path / "trigger.toml").read_text() == "# mine\n"
    assert not (tmp_path / "trigger" / "example.py").exists()

    forced = runner.invoke(app, ["init", str(tmp_path), "--force"])
    assert forced.exit_code == 0
    assert (tmp_path / "trigger.toml").read_text() != "# mine\n"


def test_doctor_json_is_one_document(isolated: Path) -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    document = json.loads(result.stdout)
    names = [c["name"] for c in document["checks"]]
    assert names == ["Python", "SQLite", "Home", "Port", "Docker", "CRIU"]
    levels = {c["name"]: c["level"] for c in document["checks"]}
    assert levels["Python"] == levels["SQLite"] == levels["Home"] == "ok"
    assert levels["Docker"] in ("ok", "warn") and levels["CRIU"] in ("ok", "warn")
    assert result.exit_code == (0 if document["ok"] else 1)


@pytest.mark.parametrize(("name", "value", "check", "words"), [
    ("TRIGGER_LOCAL_EXECUTOR", "k8s", "Executor",
     "TRIGGER_LOCAL_EXECUTOR='k8s' is not an executor"),
    ("TRIGGER_LOCAL_DATABASE_URL", "mysql://me:secret@127.0.0.1:1/db", "Database",
     "Unsupported database URL"),
    ("TRIGGER_LOCAL_DATABASE_URL", "postgresql://me:secret@127.0.0.1:notaport/db", "Database",
     "The database URL's host '127.0.0.1:notaport' has the port 'notaport'"),
])
def test_doctor_fails_a_setting_up_would_refuse(monkeypatch: pytest.MonkeyPatch, name: str,
                                                value: str, check: str, words: str) -> None:
    """doctor said all was well (exit 0) with an executor `up` refuses, and called a mysql://
    URL a connection failure with pg_hba.conf advice where `up` says the scheme is wrong; a
    port that is not a number was "invalid literal for int() with base 10" from the driver."""
    monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1, result.output
    found = {c["name"]: c for c in json.loads(result.stdout)["checks"]}[check]
    assert found["level"] == "fail" and words in found["detail"], found
    assert "secret" not in result.stdout and "pg_hba" not in found["fix"], found


@pytest.mark.parametrize("status", [404, 502])
def test_another_program_on_the_port_is_named(monkeypatch: pytest.MonkeyPatch,
                                              status: int) -> None:
    """A web server that is not the daemon on the port: `status` and `runs ls` said only
    "Error: HTTP 404"."""
    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("content-type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>not here</html>")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("TRIGGER_API_URL", url)
    client_module.configure()
    try:
        for args in (["status"], ["runs", "ls"]):
            result = runner.invoke(app, args)
            assert result.exit_code == 1 and "Traceback" not in result.output, result.output
            assert f"{url} answered HTTP {status} with no trigger-local error: another program" \
                in " ".join(result.stderr.split()), result.stderr
    finally:
        server.shutdown()
        server.server_close()


def test_dev_outside_a_project_says_to_init(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["dev"])
    assert result.exit_code == 1
    assert "trigger-local init" in result.stderr


def test_down_without_a_daemon_is_a_no_op() -> None:
    result = runner.invoke(app, ["down"])
    assert result.exit_code == 0
    assert "No daemon is running" in result.stderr


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("trigger-local ")


def test_cli_and_client_never_import_the_daemon_side() -> None:
    import subprocess
    import sys

    code = ("import sys, trigger_local.cli.main, trigger_local.sdk.management; "
            "bad = sorted(m for m in sys.modules if m.startswith(('trigger_local.store', "
            "'trigger_local.engine', 'aiosqlite'))); print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stdout + done.stderr


def test_not_running_names_the_configured_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """No daemon.json and no TRIGGER_API_URL: the address is where `up` would listen, i.e.
    TRIGGER_LOCAL_PORT when it is set, not 8030."""
    monkeypatch.delenv("TRIGGER_API_URL")
    port = free_port()
    monkeypatch.setenv("TRIGGER_LOCAL_PORT", str(port))
    result = runner.invoke(app, ["runs", "ls"])
    assert result.exit_code == 1
    assert f"not running at http://127.0.0.1:{port}." in result.stderr, result.stderr
    assert "8030" not in result.stderr


def test_not_running_names_an_ipv6_host_in_brackets(monkeypatch: pytest.MonkeyPatch) -> None:
    """TRIGGER_LOCAL_HOST=::1 (which `up` listens on) made the address http://::1:8030, "not a
    daemon URL" (its port ':1:8030')."""
    monkeypatch.delenv("TRIGGER_API_URL")
    port = free_port()
    monkeypatch.setenv("TRIGGER_LOCAL_HOST", "::1")
    monkeypatch.setenv("TRIGGER_LOCAL_PORT", str(port))
    result = runner.invoke(app, ["runs", "ls"])
    assert result.exit_code == 1
    assert f"not running at http://[::1]:{port}." in result.stderr, result.stderr


@pytest.mark.parametrize("port", ["abc", "-5", "99999"])
def test_a_port_setting_that_is_no_port_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                                    port: str) -> None:
    """TRIGGER_LOCAL_PORT=abc gave an httpx traceback for every command that talks to the
    daemon, and a bad number one from doctor's port check."""
    monkeypatch.delenv("TRIGGER_API_URL")
    monkeypatch.setenv("TRIGGER_LOCAL_PORT", port)
    for args in (["runs", "ls"], ["status"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert f"TRIGGER_LOCAL_PORT='{port}' is not a port" in result.stderr, result.stderr
    doctor = runner.invoke(app, ["doctor", "--json"])
    assert doctor.exception is None or isinstance(doctor.exception, SystemExit), doctor.output
    if port != "abc":  # read as a setting first: "not a whole number", one line
        checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
        assert checks["Port"]["level"] == "fail" and "not a port" in checks["Port"]["detail"]


@pytest.mark.parametrize(("name", "value", "words"), [
    ("TRIGGER_API_URL", "http://[::1", "TRIGGER_API_URL='http://[::1' is not a daemon URL: its "
                                       "IPv6 address opens [ but does not close it (e.g. "
                                       "http://[::1]:8030). Fix TRIGGER_API_URL"),
    ("TRIGGER_API_URL", "http://a:b", "TRIGGER_API_URL='http://a:b' is not a daemon URL: its "
                                      "port 'b' is not a number up to 65535."),
    ("TRIGGER_API_URL", "http://[::1]:99999", "its port 99999 is over 65535"),
    ("TRIGGER_API_URL", "localhost:8030", "does not start with http:// or https:// (e.g. "),
    ("TRIGGER_API_URL", "   ", "The daemon URL is empty ('   '): give the daemon's address"),
    ("TRIGGER_API_URL", "foo", "does not start with http:// or https://"),
    ("TRIGGER_API_URL", "ftp://x", "must start with http:// or https://, not ftp://."),
    ("TRIGGER_LOCAL_PROJECT", "bad ref!", "Invalid TRIGGER_LOCAL_PROJECT 'bad ref!'"),
])
def test_a_setting_the_client_cannot_use_is_one_line_naming_it(
        monkeypatch: pytest.MonkeyPatch, name: str, value: str, words: str) -> None:
    """A malformed TRIGGER_API_URL gave an httpx traceback (or "Lost the connection"), and a
    malformed TRIGGER_LOCAL_PROJECT an error about a header the user never set."""
    monkeypatch.setenv(name, value)
    result = runner.invoke(app, ["runs", "ls"])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert words in result.stderr, result.stderr


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [path]
    for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
        paths.extend(_command_paths(sub, (*path, name)))
    return paths


@pytest.mark.parametrize("path", _command_paths(typer.main.get_command(app)), ids=" ".join)
def test_help_shows_no_type_after_flags(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output, result.output
    assert "--help" in result.output and "-h" in result.output


def test_a_span_shorter_than_a_millisecond_says_so() -> None:
    from trigger_local.cli.render import log_line

    entry = {"at": "2026-01-01T00:00:00Z", "level": "info", "message": "shout", "kind": "span",
             "durationMs": 0}
    assert log_line(entry).plain.endswith("span shout (<1ms)")
    assert log_line({**entry, "durationMs": 1500}).plain.endswith("span shout (1.5s)")
    assert log_line({**entry, "durationMs": None}).plain.endswith("span shout (…)")  # still open


@pytest.mark.parametrize("args, flag, value", [
    (["trigger", "hello", "--priority", "1e400"], "--priority", "inf"),
    (["trigger", "hello", "--priority", "nan"], "--priority", "nan"),
    (["trigger", "hello", "--priority", "inf"], "--priority", "inf"),
    (["trigger", "hello", "--priority", "-5"], "--priority", "-5"),
    (["trigger", "hello", "--priority", "2592001"], "--priority", "2592001"),
    (["trigger", "hello", "--max-attempts", "99999999999999999999"], "--max-attempts",
     "99999999999999999999"),
    (["trigger", "hello", "--max-attempts", "0"], "--max-attempts", "0"),
    (["up", "--port", "99999999"], "--port", "99999999"),
    (["up", "--port", "-1"], "--port", "-1"),
    (["dev", "--port", "70000"], "--port", "70000"),
    (["queues", "ls", "--page", "99999999999"], "--page", "99999999999"),
    (["schedules", "ls", "--page", "-3"], "--page", "-3"),
])
def test_a_numeric_flag_out_of_range_names_the_flag_and_the_range(args: list[str], flag: str,
                                                                   value: str) -> None:
    """Caught before anything is sent: a NaN or a number too big for a float (1e400 is inf)
    would otherwise reach the daemon and come back as a message about JSON Infinity or a wire
    field (`maxAttempts`), not the flag."""
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{flag}'" in result.stderr and " to " in result.stderr
    assert value in result.stderr and "JSON" not in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("args", "what"), [
    (["runs", "replay", ""], "A run id (run_…) is required"),
    (["runs", "show", "  "], "A run id (run_…) is required"),
    (["runs", "cancel", ""], "A run id (run_…) is required"),
    (["tokens", "complete", "", "--data", "1"], "A token id (waitpoint_…) is required"),
    (["queues", "pause", ""], "A queue name (or a task id) is required"),
    (["schedules", "delete", ""], "A schedule id (sched_…) is required"),
    (["trigger", " "], "A task id is required"),
])
def test_a_blank_id_says_which_id_is_missing(args: list[str], what: str) -> None:
    """A blank id is refused before any request (it used to reach the URL, and the daemon
    answered only "Resource not found"); the daemon is not even asked."""
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert what in result.stderr
    assert "not running" not in result.stderr
    assert result.stdout == ""


def test_an_unknown_project_from_trigger_toml_points_at_trigger_toml(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's hint names TRIGGER_LOCAL_PROJECT; a CLI that took the project from the
    trigger.toml around it (the variable unset) says to check that file instead."""
    from trigger_local.cli.common import explain
    from trigger_local.errors import ProjectNotFoundError

    exc = ProjectNotFoundError("No project 'proj_x' is registered (known: none yet). Run "
                               "`trigger-local dev` in its directory, or fix "
                               "TRIGGER_LOCAL_PROJECT (the x-trigger-local-project header).")
    monkeypatch.delenv("TRIGGER_LOCAL_PROJECT", raising=False)
    assert explain(exc).endswith("or check `project` in this directory's trigger.toml.")
    monkeypatch.setenv("TRIGGER_LOCAL_PROJECT", "proj_x")
    assert explain(exc).endswith("(the x-trigger-local-project header).")


@pytest.mark.parametrize("url", ["postgresql://me:pw@h1:5432,h2:5433/db", "postgresql://me@[::1]/db",
                                 "postgresql://me@[::1]:5432/db", "postgresql:///db?host=/tmp",
                                 "postgresql://me:a@b:c@h/db?options=x@y:z"])
def test_a_good_database_url_has_no_problem(url: str) -> None:
    """The port check reads the URL as the driver does: several hosts, IPv6, no host, an @ in
    the password or the query."""
    assert database_url_problem(url) is None
