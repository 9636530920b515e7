"""Project images for the docker executor: the Dockerfile `trigger-local deploy` generates, the
offline build context (wheels built on the host), and indexing the tasks inside an image.

Offline by design: no registry is reachable from a container, and a container does not trust
the host's proxy CA, so every Python package is built into a wheel on the host (`pip wheel`)
and installed in the image with `pip install --no-index`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trigger_local

from ..config import ProjectConfig
from ..errors import ValidationError
from ..ids import new_id
from ..indexing import tasks_from_manifest
from ..store.models import Version
from .containers import APP_DIR, DEFAULT_BASE_IMAGE, IMAGE_ENV_KEY, IMAGE_PYTHON, connect

#: never copied into an image: environments, VCS data, caches
IGNORED = (".git", ".venv", "venv", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
           "node_modules", "*.pyc", ".trigger-local")


def requirements_of(config: ProjectConfig) -> list[str]:
    """`[build].requirements`: a list of requirement specs, or the path of a requirements file."""
    raw = config.build.get("requirements") or []
    if isinstance(raw, str):
        path = config.root / raw
        if not path.is_file():
            raise ValidationError(f"[build].requirements names {raw}, which does not exist in "
                                  f"{config.root}")
        lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
        return [line for line in lines if line]
    if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        raise ValidationError("[build].requirements must be a list of requirements or a "
                              "requirements file")
    return list(raw)


def check_python_version(config: ProjectConfig) -> None:
    # Wheels are built by this interpreter, so the image's Python must be the same minor version.
    wanted = config.build.get("python_version")
    host = f"{sys.version_info.major}.{sys.version_info.minor}"
    if wanted and str(wanted) != host:
        raise ValidationError(f"[build].python_version is {wanted}, but wheels are built on this "
                              f"machine with Python {host}: run `trigger-local deploy` with Python "
                              f"{wanted}, or set {host}")


def dockerfile(config: ProjectConfig) -> str:
    """The Dockerfile of the project's image (what `deploy --dry-run` prints)."""
    base = config.build.get("base_image") or DEFAULT_BASE_IMAGE
    apt = [str(p) for p in config.build.get("apt_packages") or []]
    lines = [f"FROM {base}"]
    if apt:
        lines.append("RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "
                     f"--no-install-recommends {' '.join(apt)} && rm -rf /var/lib/apt/lists/*")
    lines += [
        "RUN python3 -m venv /opt/venv",
        "COPY wheels /tmp/wheels",
        "COPY requirements.txt /tmp/requirements.txt",
        # --no-index: everything comes from the wheels built on the host; nothing is downloaded
        "RUN /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels "
        "trigger-local -r /tmp/requirements.txt && rm -rf /tmp/wheels",
        f"COPY project {APP_DIR}",
        f"WORKDIR {APP_DIR}",
        "ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1",
        f"LABEL dev.trigger-local.project={json.dumps(config.project)}",
    ]
    return "\n".join(lines) + "\n"


def image_tag(config: ProjectConfig) -> str:
    name = "".join(c if c.isalnum() or c in "._-" else "-"
                   for c in config.project.lower()).strip("._-")
    return f"trigger-local/{name or 'project'}:{time.strftime('%Y%m%d-%H%M%S')}"


def _source_tree() -> Path | None:
    """The checkout trigger_local runs from, when it is one (an editable install)."""
    root = Path(trigger_local.__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else None


def prepare_context(config: ProjectConfig, ctx: Path, say: Callable[[str], None]) -> None:
    """Fill `ctx` with the Dockerfile, the project and the wheels of everything it needs."""
    check_python_version(config)
    reqs = requirements_of(config)
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "Dockerfile").write_text(dockerfile(config))
    (ctx / "requirements.txt").write_text("".join(f"{r}\n" for r in reqs))
    shutil.copytree(config.root, ctx / "project", ignore=shutil.ignore_patterns(*IGNORED))
    source = _source_tree()
    ours = str(source) if source else f"trigger-local=={trigger_local.__version__}"
    say(f"building wheels on the host: trigger-local ({ours}) and {len(reqs)} requirement(s)")
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(ctx / "wheels"), ours,
           "-r", str(ctx / "requirements.txt")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ValidationError(f"`pip wheel` failed (exit {done.returncode}):\n"
                              f"{done.stderr[-4000:]}")


def build_image(ctx: Path, tag: str, say: Callable[[str], None]) -> str:
    """`docker build` of `ctx` as `tag`; returns the image id. Raises ValidationError with the
    log."""
    client = connect(timeout=600)
    tail: list[str] = []
    try:
        # host network: only `apt_packages` need it (the Debian mirror), pip never does
        for chunk in client.api.build(path=str(ctx), tag=tag, rm=True, forcerm=True, decode=True,
                                      network_mode="host"):
            text = str(chunk.get("stream") or chunk.get("status") or "").rstrip()
            if text:
                tail = (tail + [text])[-30:]
                if text.startswith("Step "):
                    say(text)
            if "error" in chunk:
                raise ValidationError(f"docker build failed: {chunk['error']}\n" + "\n".join(tail))
        return str(client.images.get(tag).id)
    finally:
        client.close()


def _run_indexer(image: str, dirs: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Import the image's task modules in a throwaway container; the manifest (or error)."""
    client = connect(timeout=180)
    with tempfile.TemporaryDirectory(prefix="trigger-local-index-") as tmp:
        container = client.containers.run(
            image, [IMAGE_PYTHON, "-m", "trigger_local.runtime", "index", "--out",
                    "/index/manifest.json"],
            environment={**env, "TRIGGER_LOCAL_PROJECT_DIR": APP_DIR,
                         "TRIGGER_LOCAL_TASK_DIRS": json.dumps(dirs)},
            volumes={tmp: {"bind": "/index", "mode": "rw"}}, working_dir=APP_DIR,
            network_mode="none", cap_drop=["ALL"], security_opt=["no-new-privileges"], detach=True)
        try:
            code = container.wait(timeout=170).get("StatusCode")
            logs = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
            client.close()
        out = Path(tmp) / "manifest.json"
        manifest: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    if code != 0 or "error" in manifest or "tasks" not in manifest:
        error = manifest.get("error") or {}
        message = error.get("message") or f"indexing in image {image} exited with code {code}"
        raise ValidationError(f"Indexing failed: {message}",
                              traceback=error.get("traceback") or logs[-8000:],
                              file=error.get("file"))
    return manifest


def index_image(image: str, project_dir: str, dirs: list[str], env: dict[str, str]) -> Version:
    """The version the tasks inside `image` make, locked to that image (blocking: call it in a
    thread)."""
    try:
        manifest = _run_indexer(image, dirs, env)
    except ValidationError:
        raise
    except Exception as exc:  # docker SDK errors: image missing, engine down
        raise ValidationError(f"Cannot index image {image}: {exc}") from exc
    return Version(id=new_id("version"), project_dir=project_dir, created_at=time.time(),
                   tasks=tasks_from_manifest(manifest), python=IMAGE_PYTHON, dirs=list(dirs),
                   env={**env, IMAGE_ENV_KEY: image})
