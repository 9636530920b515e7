"""A CLI whose home has no secret key (a home whose daemon never ran, or `--home` pointing
elsewhere) reaching another home's daemon: it sent no key, and the 401 said "check
TRIGGER_SECRET_KEY", a variable the user never set. Against a real daemon."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from trigger_local.cli.main import app
from trigger_local.sdk import client as client_module

from .conftest import DaemonProcess

pytestmark = pytest.mark.e2e


def _invoke(args: list[str]) -> Result:
    """The CLI run with `args`, its client configured from the environment (and again after:
    `--home` rewrites TRIGGER_LOCAL_HOME, which the monkeypatch undoes)."""
    client_module.configure()
    try:
        return CliRunner().invoke(app, args)
    finally:
        client_module.configure()


def test_a_home_without_a_key_names_it_and_the_daemon(daemon: DaemonProcess, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other-home"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIGGER_API_URL", daemon.url)
    monkeypatch.delenv("TRIGGER_SECRET_KEY", raising=False)
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(daemon.home))  # --home rewrites it: undone after
    result = _invoke(["--home", str(other), "runs", "ls"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"no key was sent, as {other.resolve() / 'secret_key'} does not exist" in \
        result.stderr, result.stderr
    assert f"daemon at {daemon.url} belongs to another home" in result.stderr, result.stderr
    assert "check TRIGGER_SECRET_KEY" not in result.stderr


def test_a_wrong_key_still_says_to_check_it(daemon: DaemonProcess,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIGGER_API_URL", daemon.url)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", "tr_dev_not-a-key")
    result = _invoke(["runs", "ls"])
    assert result.exit_code == 1, result.output
    assert "The daemon refused the secret key: check TRIGGER_SECRET_KEY" in result.stderr


def test_a_home_whose_key_is_another_daemons_names_it_and_the_daemon(
        daemon: DaemonProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The home has a key, its own daemon's, and TRIGGER_API_URL reaches another home's: the
    401 said "check TRIGGER_SECRET_KEY, or unset it", a variable the user never set."""
    other = tmp_path / "other-home"
    other.mkdir(mode=0o700)
    (other / "secret_key").write_text("tr_dev_the-other-homes-own-key\n")
    (other / "secret_key").chmod(0o600)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIGGER_API_URL", daemon.url)
    monkeypatch.delenv("TRIGGER_SECRET_KEY", raising=False)
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(daemon.home))  # --home rewrites it: undone after
    result = _invoke(["--home", str(other), "runs", "ls"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"refused the key in {other.resolve() / 'secret_key'}" in result.stderr, result.stderr
    assert f"daemon at {daemon.url} belongs to another home" in result.stderr, result.stderr
    assert "TRIGGER_SECRET_KEY, or unset" not in result.stderr


def test_a_project_key_of_another_homes_daemon_is_refused_in_one_line(
        daemon: DaemonProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`envvars ls` in a directory naming no project asks the daemon for the project of a key
    that is not its own (cli/common.py `key_project`): a key of another home's daemon is
    refused there, and the user reads which variable to check."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(daemon.home))
    monkeypatch.delenv("TRIGGER_API_URL", raising=False)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", "tr_dev_another-homes-daemon-key")
    result = _invoke(["envvars", "ls"])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "The daemon refused the secret key: check TRIGGER_SECRET_KEY" in result.stderr
