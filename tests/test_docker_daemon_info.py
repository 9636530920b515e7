"""A task container finds a daemon restarted on another fixed port, as a task process does
(executors/docker.py; the runtime's `TRIGGER_LOCAL_DAEMON_INFO`, sdk/worker_client.py
`daemon_url_in`): each daemon start writes its url into a directory of the home that every
container has mounted read-only, and the container's runtime is told where it sees that file.
The Docker engine is the edge faked here (its `containers.run` records what it is asked);
the e2e docker tests run real containers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.engine_support import T0, open_engine
from trigger_local.clock import FakeClock
from trigger_local.config import DAEMON_INFO_ENV
from trigger_local.executors.containers import IMAGE_ENV_KEY, ContainerHandle
from trigger_local.executors.docker import DAEMON_INFO_MOUNT, ContainerSpawner
from trigger_local.sdk.worker_client import daemon_url_in
from trigger_local.store.models import TaskDef, Version

HELLO = TaskDef(task_id="hello", queue="task/hello")


class Containers:
    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    def run(self, image: str, **options: Any) -> object:
        self.asked.append(options)
        return object()


class Engine:
    def __init__(self) -> None:
        self.containers = Containers()


async def test_each_start_tells_the_containers_where_the_daemon_listens(tmp_path: Path) -> None:
    engine = await open_engine(tmp_path, FakeClock(T0), tasks=[HELLO])
    try:
        engine.settings.port = 41001
        spawner = ContainerSpawner(engine, engine.settings, "secret", lambda: None)
        spawner._client = docker = Engine()
        await spawner.start()  # no engine answers here: the url is written all the same
        published = spawner.daemon_info_dir / "daemon.json"
        assert daemon_url_in(published) == "http://127.0.0.1:41001"
        version = Version(id="version_1", project_dir="/proj", created_at=T0,
                          env={IMAGE_ENV_KEY: "image:1"}, tasks=[HELLO])
        worker = ContainerHandle(id="worker_1", version_id=version.id, pid=None,
                                 log_path=tmp_path / "w.log")
        await spawner.launch(worker, version, lambda w: None)
        [options] = docker.containers.asked
        assert options["volumes"][str(spawner.daemon_info_dir)] == \
            {"bind": DAEMON_INFO_MOUNT, "mode": "ro"}
        assert options["environment"][DAEMON_INFO_ENV] == f"{DAEMON_INFO_MOUNT}/daemon.json"
        # the next daemon, on another port: what the mounted file says now
        engine.settings.port = 41002
        await ContainerSpawner(engine, engine.settings, "secret", lambda: None).start()
        assert daemon_url_in(published) == "http://127.0.0.1:41002"
        assert not list(spawner.daemon_info_dir.glob(".daemon.json.*"))  # replaced in one step
    finally:
        await engine.store.close()
