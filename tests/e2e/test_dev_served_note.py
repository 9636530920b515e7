"""What `dev` says when a registration fails (trigger_local/cli/dev.py `register`), against a
real daemon: it said "Still serving the last version that imported" even when no version had
ever registered (a bad `.env` from the start), and nothing was served. Now it names the version
still served, or says that none is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trigger_local.cli.dev import register
from trigger_local.config import load_project
from trigger_local.sdk.client import SyncApiClient

from .conftest import DaemonProcess


@pytest.fixture
def api(daemon: DaemonProcess) -> Iterator[SyncApiClient]:
    client = SyncApiClient(daemon.url, daemon.key)
    yield client
    client.close()


def test_a_first_registration_that_fails_says_nothing_is_served(
        daemon: DaemonProcess, api: SyncApiClient, project: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    (project / ".env").write_text("TRIGGER_LOCAL_WORKER_CHANNEL=OFF\n")
    assert register(api, load_project(project), "proj_test") is None
    said = " ".join(capsys.readouterr().err.split())
    assert "TRIGGER_LOCAL_WORKER_CHANNEL='OFF'" in said, said
    assert "Still serving" not in said, said
    assert ("Nothing of proj_test is served yet: no version of it has registered, so its runs "
            "wait. Fix it and save.") in said, said


def test_a_later_registration_that_fails_names_the_version_still_served(
        daemon: DaemonProcess, api: SyncApiClient, project: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert register(api, load_project(project), "proj_test") == "proj_test"
    version = daemon.api("GET", "/api/v1/local/projects").json()["data"][0]["currentVersion"]
    capsys.readouterr()
    (project / ".env").write_text("TRIGGER_LOCAL_WORKER_CHANNEL=OFF\n")
    assert register(api, load_project(project), "proj_test") is None
    said = " ".join(capsys.readouterr().err.split())
    assert f"Still serving {version}, the last version that registered; fix it and save." \
        in said, said
