"""`trigger-local deploy`: build the project's image offline and register a version locked to it.

The image is built here (the CLI has the project and the host's pip); the daemon then indexes
the tasks inside the image, so what is registered is exactly what will run.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import typer
from rich.text import Text

from ..config import ProjectConfig, find_project_root, load_project
from ..errors import ValidationError
from .common import JSON_OPTION, emit_json, err, fail, print_error
from .dotenv import read_dotenv


def deploy(
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Print the generated Dockerfile, check what the build "
                                      "would refuse (a python_version other than this one), and "
                                      "stop."),
    tag: str | None = typer.Option(None, "--tag",
                                   help="Image name (default: trigger-local/<project>:<time>)."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Build the project's Docker image (offline) and register a version that runs in it."""
    from ..executors import images  # the docker SDK: only this command and the executor need it
    from ..executors.containers import SETUP_HINT, engine_problem

    root = find_project_root(Path.cwd())
    if root is None:
        fail("No trigger.toml here or above: run `trigger-local init` first.")
    config = load_project(root)
    try:
        text = images.dockerfile(config)
        if dry_run:
            sys.stdout.write(text)
            images.check_python_version(config)  # what the real deploy would refuse: say so
            return
        problem = engine_problem()
        if problem:
            fail(f"Cannot build: {problem}. To fix it, {SETUP_HINT}.")
        image = tag or images.image_tag(config)
        with tempfile.TemporaryDirectory(prefix="trigger-local-deploy-") as tmp:
            images.prepare_context(config, Path(tmp) / "ctx", _say)
            _say(f"docker build -t {image}")
            images.build_image(Path(tmp) / "ctx", image, _say)
    except ValidationError as exc:
        fail(exc.message)
    _register(config, image, json_output)


def _say(message: str) -> None:
    err().print(Text(message, style="dim"))


def _register(config: ProjectConfig, image: str, json_output: bool) -> None:
    from ..sdk.client import get_sync_client

    try:  # the project's `.env` only: the host's environment does not belong in a container
        env = read_dotenv(config.root / ".env")
        answer = get_sync_client().register_version(project_dir=str(config.root), dirs=config.dirs,
                                                    env=env, image=image,
                                                    defaults=config.task_defaults())
    except ValidationError as exc:
        print_error(exc.message)
        trace = exc.details.get("traceback")
        if trace:
            err().print(Text(str(trace).rstrip(), style="dim"))
        raise typer.Exit(1) from None
    if json_output:
        emit_json(answer)
        return
    tasks = sorted(str(t.get("id")) for t in answer.get("tasks") or [])
    err().print(f"[green]Deployed[/green] {answer.get('id')} (image {image}) with {len(tasks)} "
                f"task{'s' if len(tasks) != 1 else ''}: {', '.join(tasks) or '(none)'}")
