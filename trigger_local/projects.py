"""Project refs, shared by the daemon, the SDK and the CLI.

A project is what one `trigger.toml` describes; its ref (`project = "proj_myapp"`) is how the
daemon keeps several projects apart: versions, runs, queues and schedules belong to one. How a
request says which project it means (a project key, or this header with the daemon's key) is
in docs/architecture.md ("Projects")."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .errors import ValidationError

#: the project of rows from before projects existed, and of records built without one
DEFAULT_PROJECT = "proj_local"
#: with the daemon's own key, names the project a request means (sent by the SDK and the CLI)
PROJECT_HEADER = "x-trigger-local-project"
#: names that project for the SDK and the CLI when the current directory has no trigger.toml
PROJECT_ENV = "TRIGGER_LOCAL_PROJECT"

_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_project_ref(ref: object, where: str = "project") -> str:
    """A project ref: 1-64 letters, digits, `_` or `-`, starting with a letter or digit."""
    if not isinstance(ref, str) or not _REF.fullmatch(ref):
        shown = repr(ref) if len(repr(ref)) <= 80 else repr(ref)[:77] + "..."  # not 5,000 chars
        raise ValidationError(f"Invalid {where} {shown}: use 1-64 letters, digits, '_' or '-' "
                              "(e.g. project = \"proj_myapp\")")
    return ref


def derive_project_ref(root: Path) -> str:
    """The ref of a project whose config names none: `proj_` and its directory's name, so it
    stays the same across runs and differs between projects in different directories."""
    name = root.resolve().name
    slug = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    if not slug:  # `___`, `日本`: a short hash of the name, so such projects do not share a ref
        slug = "project-" + hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:8]
    return f"proj_{slug}"[:64]
