"""What the docker e2e tests share: the engine check (skip, or fail under CI=true) and a
project deployed once with the real CLI (`trigger-local deploy`)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.host_limit import host_limit

from .conftest import DaemonProcess


def engine_or_skip() -> None:
    from trigger_local.executors.containers import DEFAULT_BASE_IMAGE, connect, engine_problem

    problem = engine_problem()
    if problem is None:
        client = connect(timeout=10)
        try:
            client.images.get(DEFAULT_BASE_IMAGE)
        except Exception:
            problem = f"no base image {DEFAULT_BASE_IMAGE} (run scripts/make-base-image.sh)"
        finally:
            client.close()
    if problem is None:
        return
    message = f"docker executor tests need a Docker engine: {problem}; run scripts/setup-docker.sh"
    host_limit(message)


def deploy(root: Path, home: Path, name: str, tasks: str,
           files: dict[str, str] | None = None) -> tuple[str, str]:
    """Write a project (`trigger/tasks.py` = `tasks`, plus `files`) in `root` and deploy it with a
    docker daemon in `home`: (image tag, the CLI's stderr). Remove the image with `remove_image`."""
    (root / "trigger").mkdir()
    (root / "trigger.toml").write_text(f'project = "proj_{name}"\ndirs = ["trigger"]\n')
    (root / "trigger" / "tasks.py").write_text(textwrap.dedent(tasks))
    for path, text in (files or {}).items():
        (root / path).write_text(text)
    daemon = DaemonProcess(home, env={"TRIGGER_LOCAL_EXECUTOR": "docker"}).start()
    image = f"trigger-local-test/{name.replace('_', '-')}:{os.getpid()}"
    try:
        env = {**os.environ, "TRIGGER_LOCAL_HOME": str(home), "TRIGGER_API_URL": daemon.url,
               "TRIGGER_SECRET_KEY": daemon.key}
        done = subprocess.run([sys.executable, "-m", "trigger_local.cli.main", "deploy", "--tag",
                               image],
                              cwd=root, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-4000:]
    finally:
        daemon.close()
    return image, done.stderr


def remove_image(image: str) -> None:
    subprocess.run(["docker", "rmi", "-f", image], capture_output=True)
