"""A run triggered while its project's first version registers (docs/architecture.md,
"Projects"): the project is known from the start of the registration's transaction, its version
current once it committed; a trigger in between must not leave its run waiting as
PENDING_VERSION for good. A real daemon; triggers sent from threads while versions register,
each try a new project."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import DaemonProcess, wait_for, write_project

TRIES = 4
SENDERS = 3


@pytest.fixture(params=["sqlite", "postgres"])
def racing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DaemonProcess]:
    env = {"TRIGGER_LOCAL_HOME": str(tmp_path / "home")}
    if request.param == "postgres":  # its store yields while a transaction is open
        env["TRIGGER_LOCAL_DATABASE_URL"] = request.getfixturevalue("pg_cluster").fresh_url()
    d = DaemonProcess(tmp_path / "home", env=env)
    try:
        yield d.start()
    finally:
        d.close()


def _spam(daemon: DaemonProcess, ref: str, stop: threading.Event, made: list[str],
          refused: list[str]) -> None:
    with httpx.Client(base_url=daemon.url, timeout=30,
                      headers={"Authorization": f"Bearer {daemon.key}",
                               "x-trigger-local-project": ref}) as client:
        while not stop.is_set():
            r = client.post("/api/v1/tasks/hello/trigger", json={"payload": "{}"})
            if r.status_code == 200:
                made.append(r.json()["id"])
            elif r.status_code != 404:  # 404: the registration has not begun
                refused.append(r.text)


def _statuses(daemon: DaemonProcess, run_ids: list[str]) -> dict[str, Any]:
    return {rid: daemon.run(rid)["status"] for rid in run_ids}


def test_runs_triggered_while_a_version_registers_are_queued(racing: DaemonProcess,
                                                             tmp_path: Path) -> None:
    daemon = racing
    made: list[str] = []
    refused: list[str] = []
    for i in range(TRIES):
        root = write_project(tmp_path / f"p{i}")
        ref = f"proj_race{i}"
        (root / "trigger.toml").write_text(f'project = "{ref}"\ndirs = ["trigger"]\n')
        stop = threading.Event()
        senders = [threading.Thread(target=_spam, args=(daemon, ref, stop, made, refused))
                   for _ in range(SENDERS)]
        for sender in senders:
            sender.start()
        try:
            daemon.register(root)
            before = len(made)
            wait_for(lambda n=before: len(made) > n, 30, what="a run triggered after registering")
        finally:
            stop.set()
            for sender in senders:
                sender.join(30)
    assert made and not refused, refused[:3]
    # a run that got its version is QUEUED (or further) at once, none waits for a version
    stuck = {rid: s for rid, s in _statuses(daemon, made).items() if s == "PENDING_VERSION"}
    assert not stuck, f"{len(stuck)} of {len(made)} runs wait for a version that is there"
