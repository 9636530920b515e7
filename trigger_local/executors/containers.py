"""The Docker engine as the docker executor sees it: machine presets, a connection that may
come and go, and the options every task container gets.

Blocking docker SDK calls are made from threads (`asyncio.to_thread`) by the executor; nothing
here touches the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import DockerException
from docker.utils import kwargs_from_env

# the presets are shared with the engine and the SDK
from ..machines import Machine, machine_for
from .workers import WorkerHandle

#: the image `scripts/make-base-image.sh` builds, used when `[build].base_image` is not set
DEFAULT_BASE_IMAGE = "trigger-local-base:bookworm"
#: where a deployed project lives inside its image
APP_DIR = "/app"
#: the interpreter of the image's virtualenv (trigger_local and the requirements live there)
IMAGE_PYTHON = "/opt/venv/bin/python"
#: the image of a version is kept in its env under this key (no schema change needed)
IMAGE_ENV_KEY = "TRIGGER_LOCAL_IMAGE"
LABEL_WORKER = "dev.trigger-local.worker"
LABEL_HOME = "dev.trigger-local.home"
#: Docker 20.10's API (Debian 12's docker.io); newer engines still accept it, the SDK's default
#: does not
API_VERSION = "1.41"
SETUP_HINT = ("run `sudo bash scripts/setup-docker.sh` (or start the engine: "
              "`dockerd --experimental &`)")


def engine_problem() -> str | None:
    """Why the Docker engine cannot be used right now, or None when it answers."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if host.startswith("unix://"):
        # Asked with a plain socket first: the SDK leaks its socket when nothing listens.
        path = host.removeprefix("unix://")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            try:
                sock.connect(path)
            except OSError as exc:
                return (f"the Docker engine is not running (no answer at {path}: "
                        f"{exc.strerror or exc})")
    try:
        client = connect(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # the SDK raises many kinds; any of them means "not usable"
        return f"the Docker engine does not answer ({type(exc).__name__}: {exc})"
    return None


def connect(timeout: int = 60) -> docker.DockerClient:
    # A fixed API version: "auto" probes in the constructor (and fails when the engine is down).
    return docker.DockerClient(version=API_VERSION, timeout=timeout, **kwargs_from_env())


def container_options(machine: Machine, env: dict[str, str],
                      labels: dict[str, str]) -> dict[str, Any]:
    """`containers.run` options for a task container: host network (to reach the daemon on
    127.0.0.1), CPU and memory of the machine preset, no capabilities, no Docker socket."""
    return {
        "command": [IMAGE_PYTHON, "-m", "trigger_local.runtime", "work"],
        "environment": env, "labels": labels, "working_dir": APP_DIR,
        "network_mode": "host", "detach": True,
        "nano_cpus": int(machine.cpus * 1e9),
        # swap = memory: a task over its limit is OOM-killed instead of swapping
        "mem_limit": machine.memory_bytes, "memswap_limit": machine.memory_bytes,
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "privileged": False,
        "pids_limit": 4096,
    }


def describe_container_exit(code: int | None, oom_killed: bool, machine: str, tail: str) -> str:
    """A sentence for the run's error when a task container ended during an attempt."""
    if oom_killed:
        spec = machine_for(machine)
        what = (f"Out of memory: the task used more than the {spec.memory_gb:g} GB of machine "
                f"{spec.name!r} and was killed. Give the task a bigger machine (machine=\"...\"), "
                "or retry out-of-memory failures on one "
                f"(Retry(out_of_memory={{\"machine\": \"next\"}})).")
    elif code is None:
        what = "The task container exited"
    elif code == 137:
        what = "The task container was killed (SIGKILL)"
    else:
        what = f"The task container exited with code {code}"
    return f"{what}\n--- last lines of the container's output ---\n{tail}" if tail else what


@dataclass
class ContainerHandle(WorkerHandle):
    container: Any = None
    machine: str = "small-1x"

    def cancel(self, grace_s: float) -> None:
        # on_cancel hooks are not run in a container (docs/hooks.md): it is killed at once
        self.kill()

    def kill(self) -> None:
        """Kill the container (from a thread: the SDK blocks)."""
        if self.container is None or self.exited.is_set():
            return
        asyncio.get_running_loop().run_in_executor(None, self._kill_now)

    def _kill_now(self) -> None:
        with contextlib.suppress(DockerException):
            self.container.kill()
