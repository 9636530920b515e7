"""Two clients finishing the same token at once, against a real daemon: exactly one of them
changed it, the daemon's answer says which (`changed`, ours, next to Trigger.dev's `success`),
and `trigger-local tokens complete|timeout` that lost the race says so and exits 1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from trigger_local.cli.main import app
from trigger_local.sdk import client as client_module
from trigger_local.sdk.client import SyncApiClient

from .conftest import DaemonProcess

pytestmark = pytest.mark.e2e


def _token(d: DaemonProcess) -> str:
    r = d.api("POST", "/api/v1/waitpoints/tokens", json={"timeout": "10m"})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def _complete(d: DaemonProcess, token: str, data: Any) -> httpx.Response:
    return d.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete", json={"data": data})


@pytest.fixture
def cli_env(daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch,
            tmp_path: Path) -> Iterator[None]:
    """The CLI in this process, talking to `daemon` (a fresh process-wide client)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TRIGGER_API_URL", daemon.url)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", daemon.key)
    client_module.configure()
    yield
    client_module.configure()


def _other_client_first(monkeypatch: pytest.MonkeyPatch, d: DaemonProcess, method: str) -> None:
    """Another client completes the token just before the CLI's own call reaches the daemon
    (after whatever the CLI read before it)."""
    real = getattr(SyncApiClient, method)

    def racing(self: SyncApiClient, token_id: str, *args: Any) -> Any:
        assert _complete(d, token_id, "the other client's").status_code == 200
        return real(self, token_id, *args)

    monkeypatch.setattr(SyncApiClient, method, racing)


def _output(d: DaemonProcess, token: str) -> Any:
    shown = d.api("GET", f"/api/v1/waitpoints/tokens/{token}").json()
    assert shown["status"] == "COMPLETED", shown
    return json.loads(shown["output"]) if shown["outputType"].endswith("json") else shown["output"]


@pytest.mark.usefixtures("cli_env")
def test_cli_complete_that_lost_the_race_says_it_completed_nothing(
        daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    token = _token(daemon)
    _other_client_first(monkeypatch, daemon, "complete_token")
    result = CliRunner().invoke(app, ["tokens", "complete", token, "--data", '{"mine": true}'])
    assert result.exit_code == 1, result.output
    assert f"{token} was already completed at " in result.stderr, result.stderr
    assert "nothing was completed" in result.stderr and "Completed" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert _output(daemon, token) == "the other client's"


@pytest.mark.usefixtures("cli_env")
def test_cli_timeout_that_lost_the_race_says_it_timed_out_nothing(
        daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    token = _token(daemon)
    _other_client_first(monkeypatch, daemon, "timeout_token")
    result = CliRunner().invoke(app, ["tokens", "timeout", token])
    assert result.exit_code == 1, result.output
    assert f"{token} was already completed at " in result.stderr, result.stderr
    assert "nothing was timed out" in result.stderr and "Timed out" not in result.stderr
    assert _output(daemon, token) == "the other client's"


@pytest.mark.usefixtures("cli_env")
def test_cli_complete_that_won_says_completed(daemon: DaemonProcess) -> None:
    token = _token(daemon)
    result = CliRunner().invoke(app, ["tokens", "complete", token, "--data", '"ünïcødé ✓"'])
    assert result.exit_code == 0 and f"Completed {token}." in result.stderr, result.output
    assert _output(daemon, token) == "ünïcødé ✓"


def test_concurrent_completions_exactly_one_changed_it(daemon: DaemonProcess) -> None:
    token = _token(daemon)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: _complete(daemon, token, {"i": i}), range(16)))
    assert all(a.status_code == 200 and a.json()["success"] is True for a in answers)
    winners = [i for i, a in enumerate(answers) if a.json()["changed"] is True]
    assert len(winners) == 1, [a.json() for a in answers]
    assert _output(daemon, token) == {"json": {"i": winners[0]}}
    forced = daemon.api("POST", f"/api/v1/waitpoints/tokens/{token}/timeout").json()
    assert forced["status"] == "COMPLETED" and forced["changed"] is False


def test_concurrent_completions_and_timeouts_exactly_one_changed_it(
        daemon: DaemonProcess) -> None:
    token = _token(daemon)

    def finish(i: int) -> httpx.Response:
        if i % 2:
            return daemon.api("POST", f"/api/v1/waitpoints/tokens/{token}/timeout")
        return _complete(daemon, token, {"i": i})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(finish, range(16)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    winners = [i for i, a in enumerate(answers) if a.json()["changed"] is True]
    assert len(winners) == 1, [a.json() for a in answers]
    shown = daemon.api("GET", f"/api/v1/waitpoints/tokens/{token}").json()
    assert shown["status"] == ("TIMED_OUT" if winners[0] % 2 else "COMPLETED"), shown


def test_completing_hostile_ids_and_bodies_answers_plainly(daemon: DaemonProcess) -> None:
    for bad in ("waitpoint_ünï", "waitpoint_" + "x" * 5000, "%20"):
        r = _complete(daemon, bad, 1)
        assert r.status_code in (400, 404) and "error" in r.json(), r.text
    token = _token(daemon)
    huge = daemon.api("POST", f"/api/v1/waitpoints/tokens/{token}/complete",
                      content=b'{"data": "' + b"x" * (4 << 20) + b'"}',
                      headers={"Content-Type": "application/json"})
    assert huge.status_code == 413, huge.text
    assert daemon.api("GET", f"/api/v1/waitpoints/tokens/{token}").json()["status"] == "WAITING"
    assert _complete(daemon, token, None).json() == {"success": True, "changed": True}


@pytest.mark.usefixtures("cli_env")
@pytest.mark.parametrize("command", ["complete", "timeout"])
def test_cli_with_an_older_daemon_that_answers_no_changed_says_what_it_did(
        daemon: DaemonProcess, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    """A daemon started before `changed` existed (`up --detach`, then the package upgraded)
    answers `{"success": true}` and the bare token: the CLI took the missing field for "changed
    nothing", read the token it had just finished, and said it was already done (exit 1)."""
    method = f"{command}_token"
    real = getattr(SyncApiClient, method)

    def older(self: SyncApiClient, token_id: str, *args: Any) -> Any:
        answer = dict(real(self, token_id, *args))
        assert answer.pop("changed") is True  # the real daemon's answer, minus the field
        return answer

    monkeypatch.setattr(SyncApiClient, method, older)
    token = _token(daemon)
    result = CliRunner().invoke(app, ["tokens", command, token])
    assert result.exit_code == 0, result.output
    done = "Completed" if command == "complete" else "Timed out"
    assert result.stderr.strip() == f"{done} {token}.", result.stderr
    shown = daemon.api("GET", f"/api/v1/waitpoints/tokens/{token}").json()
    assert shown["status"] == ("COMPLETED" if command == "complete" else "TIMED_OUT"), shown
