"""The pages whose example is a whole program run as written: their trigger files go into a
project, their app code runs as a script against a real daemon, and it prints what the page
says it prints (docs/hooks.md, docs/realtime.md)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DaemonProcess

DOCS = Path(__file__).resolve().parents[2] / "docs"
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)
#: each page and the trigger files its example defines
PAGES = {"hooks.md": ("trigger/init.py", "trigger/orders.py"),
         "realtime.md": ("trigger/story.py",)}


def _blocks(page: str) -> dict[str, str]:
    """The page's python blocks by their first line (`# trigger/init.py`, `# app.py`), and the
    plain block after the app as `output`."""
    found: dict[str, str] = {}
    blocks = BLOCK.findall((DOCS / page).read_text())
    for number, (lang, code) in enumerate(blocks):
        first = code.splitlines()[0]
        if lang == "python" and first.startswith("# ") and first.endswith(".py"):
            found[first[2:].strip()] = code
            if first == "# app.py":
                found["output"] = blocks[number + 1][1]
    return found


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_pages_example_runs_and_prints_what_it_says(page: str, daemon: DaemonProcess,
                                                        tmp_path: Path) -> None:
    blocks = _blocks(page)
    project = tmp_path / "docproj"
    (project / "trigger").mkdir(parents=True)
    (project / "trigger.toml").write_text('project = "proj_docs"\ndirs = ["trigger"]\n')
    for name in PAGES[page]:
        (project / name).write_text(blocks[name])
    daemon.register(project)
    (tmp_path / "app.py").write_text(blocks["app.py"])
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")},
           "TRIGGER_API_URL": daemon.url, "TRIGGER_SECRET_KEY": daemon.key}
    proc = subprocess.run([sys.executable, str(tmp_path / "app.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line.rstrip() for line in proc.stdout.splitlines()]
    assert lines == [line.rstrip() for line in blocks["output"].splitlines()]
