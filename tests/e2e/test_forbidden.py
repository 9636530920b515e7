"""A 403 is not a 401: valid credentials used outside their scope reach the SDK and the CLI as
`ForbiddenError` (code `forbidden`), a wrong key as `AuthenticationError` (code `unauthorized`),
against a real daemon."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trigger_local.api.auth import sign_jwt
from trigger_local.cli.main import app
from trigger_local.errors import AuthenticationError, ForbiddenError
from trigger_local.projects import PROJECT_ENV
from trigger_local.sdk.client import SyncApiClient
from trigger_local.tokens import project_key

from .conftest import DaemonProcess

pytestmark = pytest.mark.e2e


def test_a_public_token_outside_its_scope_is_forbidden(ready: DaemonProcess) -> None:
    mine, other = ready.trigger("hello", {"name": "a"}), ready.trigger("hello", {"name": "b"})
    token = sign_jwt(ready.key, [f"read:runs:{mine}"], now=time.time())
    client = SyncApiClient(ready.url, token)
    try:
        assert client.retrieve_run(mine)["id"] == mine
        with pytest.raises(ForbiddenError) as denied:
            client.retrieve_run(other)
    finally:
        client.close()
    assert denied.value.code == "forbidden" and denied.value.status == 403
    assert not isinstance(denied.value, AuthenticationError)
    raw = ready.api("GET", f"/api/v3/runs/{other}", headers={"Authorization": f"Bearer {token}"})
    assert raw.status_code == 403 and raw.json()["code"] == "forbidden", raw.text


def test_a_wrong_key_is_unauthenticated_not_forbidden(ready: DaemonProcess) -> None:
    client = SyncApiClient(ready.url, "tr_dev_not-a-key")
    try:
        with pytest.raises(AuthenticationError) as refused:
            client.list_runs()
    finally:
        client.close()
    assert refused.value.code == "unauthorized" and not isinstance(refused.value, ForbiddenError)


def test_a_project_key_acting_for_another_project_is_forbidden_in_sdk_and_cli(
        ready: DaemonProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no trigger.toml around: the project comes from the env only
    monkeypatch.setenv("TRIGGER_API_URL", ready.url)
    monkeypatch.setenv("TRIGGER_SECRET_KEY", project_key(ready.key, "proj_test"))
    monkeypatch.setenv(PROJECT_ENV, "proj_other")
    client = SyncApiClient()
    try:
        with pytest.raises(ForbiddenError, match="cannot act for project proj_other"):
            client.list_runs()
    finally:
        client.close()
    result = CliRunner().invoke(app, ["runs", "ls"])
    assert result.exit_code == 1
    assert "cannot act for project proj_other" in result.stderr, result.stderr
    # the 401 hint ("the daemon refused the secret key") would send the user the wrong way
    assert "refused the secret key" not in result.stderr, result.stderr
