"""Replay with the docker executor (docs/durability.md): the reboot simulation kills the daemon
with -9 and removes every task container (its checkpoints go with it); the next daemon resumes
the run by replay in a new container: the step before the wait is not run again, the original
token completes the run."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import DaemonProcess, wait_for
from .docker_support import deploy, engine_or_skip, remove_image
from .replay_support import complete, metadata_of

pytestmark = pytest.mark.slow  # a deploy and daemon restarts: minutes, not seconds


DK_REPLAY_TASKS = '''
import uuid
from trigger_local import Retry, task, wait, step, metadata

@task(id="dr-token", retry=Retry(max_attempts=1))
async def dr_token(payload, ctx):
    value = await step.run("side-effect", lambda: uuid.uuid4().hex)
    metadata.set("value", value)
    token = await wait.create_token(timeout="1h")
    metadata.set("token", token.id)
    result = await wait.for_token(token)
    return {"value": value, "data": result.output, "attempt": ctx.attempt.number}
'''


@pytest.fixture(scope="module")
def replay_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    engine_or_skip()
    root = tmp_path_factory.mktemp("docker-replay-project")
    image, _ = deploy(root, tmp_path_factory.mktemp("deploy-replay-home"), "e2e_docker_replay",
                      DK_REPLAY_TASKS)
    yield root, image
    remove_image(image)


def _containers(home: Path) -> list[str]:
    label = f"label=dev.trigger-local.home={home}"
    return subprocess.run(["docker", "ps", "-aq", "--filter", label], capture_output=True,
                          text=True).stdout.split()


def _remove_containers(home: Path) -> None:
    found = _containers(home)
    if found:
        subprocess.run(["docker", "rm", "-f", *found], capture_output=True)


@pytest.mark.parametrize("checkpoints", ["off", "auto"])
def test_reboot_resumes_a_container_run_by_replay(tmp_path: Path, checkpoints: str,
                                                  replay_image: tuple[Path, str]) -> None:
    root, image = replay_image
    home = tmp_path / "home"
    d = DaemonProcess(home, env={"TRIGGER_LOCAL_EXECUTOR": "docker",
                                 "TRIGGER_LOCAL_HOME": str(home),
                                 "TRIGGER_LOCAL_CHECKPOINTS": checkpoints,
                                 "TRIGGER_LOCAL_HOLD_THRESHOLD_S": "1"}).start()
    try:
        r = d.api("POST", "/api/v1/local/versions", json={"projectDir": str(root),
                                                          "dirs": ["trigger"], "image": image})
        assert r.status_code == 200, r.text
        run_id = d.trigger("dr-token", {})
        token = metadata_of(d, run_id, "token")
        value = metadata_of(d, run_id, "value")
        d.wait_status(run_id, "WAITING")
        d.kill9()
        _remove_containers(home)  # every task process gone (a checkpoint goes with its container)
        d.start()
        # the interrupted try does not count (attemptCount stays 1); the replaying one waits
        wait_for(lambda: len(d.run(run_id)["attempts"]) == 2
                 and d.run(run_id)["status"] == "WAITING", 90,
                 what="the replayed attempt to wait on the token again")
        complete(d, token, {"ok": 1})
        run = d.wait_status(run_id, timeout=90)
        assert run["status"] == "COMPLETED", run
        # the step's value is the first attempt's: it was not run again
        assert run["output"] == {"value": value, "data": {"ok": 1}, "attempt": 1}
        assert [a["rawStatus"] for a in run["attempts"]] == ["INTERRUPTED", "COMPLETED"]
    finally:
        d.close()
        _remove_containers(home)
