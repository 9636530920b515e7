"""`trigger-local dashboard` with no daemon at the address: it says so and how to start one,
and exits 1, instead of opening a screen that reconnects forever."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trigger_local.cli.main import app as cli
from trigger_local.sdk import client as client_module
from trigger_local.sdk.client import ApiClient
from tui.app import Dashboard


def nobody_listens() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def dead_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = nobody_listens()
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRIGGER_API_URL", url)
    monkeypatch.delenv("TRIGGER_SECRET_KEY", raising=False)
    client_module.configure()
    yield url
    client_module.configure()


def test_the_command_says_how_to_start_a_daemon_and_exits_1(dead_url: str) -> None:
    result = CliRunner().invoke(cli, ["dashboard"])
    assert result.exit_code == 1
    assert "not running" in result.stderr and dead_url in result.stderr
    assert "trigger-local up" in result.stderr and "trigger-local dev" in result.stderr
    assert result.stdout == ""


async def test_the_app_exits_1_when_its_first_contact_fails(
        dead_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    app = Dashboard(ApiClient(dead_url, "tr_dev_x"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await app.workers.wait_for_complete()  # the first contact, and nothing left reconnecting
    assert app.return_code == 1
    said = " ".join(capsys.readouterr().err.split())  # printed as the app closes
    assert dead_url in said and "trigger-local up" in said


@pytest.mark.parametrize("where", ["--url", "TRIGGER_API_URL"])
def test_a_url_that_is_not_one_is_named_where_it_was_given(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           where: str) -> None:
    # `--url notaurl` said "Check TRIGGER_API_URL", which the user had not set
    monkeypatch.setenv("TRIGGER_LOCAL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TRIGGER_API_URL", raising=False)
    args = ["dashboard"]
    if where == "--url":
        args += ["--url", "notaurl"]
    else:
        monkeypatch.setenv("TRIGGER_API_URL", "notaurl")
    try:
        result = CliRunner().invoke(cli, args)
    finally:
        client_module.configure()
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "'notaurl'" in result.stderr and "is not a daemon URL: it does not start with " \
        "http:// or https://" in result.stderr, result.stderr
    named, other = ("--url", "TRIGGER_API_URL") if where == "--url" else \
        ("TRIGGER_API_URL", "--url")
    assert named in result.stderr and other not in result.stderr, result.stderr
