"""`trigger-local init`: a trigger.toml and example tasks in the current project."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer

from ..projects import derive_project_ref
from .common import err, fail

#: template file -> where it goes, relative to the project root
FILES = {"trigger.toml": "trigger.toml", "example.py": "trigger/example.py"}


def template(name: str) -> str:
    return (resources.files("trigger_local.cli") / "templates" / name).read_text()


def init(
    path: Path = typer.Argument(Path("."), help="Project directory (default: the current one)."),
    force: bool = typer.Option(False, "--force", help="Overwrite files that already exist."),
) -> None:
    """Write trigger.toml and trigger/example.py with a few example tasks."""
    root = path.resolve()
    targets = {name: root / rel for name, rel in FILES.items()}
    existing = [p for p in targets.values() if p.exists()]
    if existing and not force:
        names = ", ".join(str(p.relative_to(root)) for p in existing)
        fail(f"{names} already exist in {root}; nothing was written. "
             "Pass --force to overwrite them.")
    for name, target in targets.items():
        text = template(name)
        if name == "trigger.toml":  # its own ref, so two projects on one daemon stay apart
            text = text.replace('project = "{project}"', f'project = "{derive_project_ref(root)}"')
        try:  # a path under a file, in /proc or on a read-only mount was a traceback
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        except OSError as exc:
            fail(f"Cannot write {target}: {exc.strerror or exc}. Run `trigger-local init` in a "
                 "directory you can write to (or give one: `trigger-local init PATH`).")
        err().print(f"[green]wrote[/green] {target.relative_to(root)}")
    err().print("\nNext: run [bold]trigger-local dev[/bold] here, then in another terminal\n"
                "  trigger-local trigger hello --payload '{\"name\": \"Ada\"}' --wait")
