"""The README's quickstart commands, literally, against a real daemon serving
examples/quickstart: every line exits 0 and does what the README says (hello greets, parent
triggers a child and waits for it, flaky fails twice and then succeeds...).

This is the fast check (the checkout's own install); tests/e2e/test_install.py runs the same
block on a fresh clone installed by the README's first line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .conftest import DaemonProcess
from .readme_quickstart import quickstart_blocks, run_block

ROOT = Path(__file__).resolve().parents[2]
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_readme_first_line_installs_then_runs_dev_in_the_example() -> None:
    first, _ = quickstart_blocks()
    assert first.startswith("bash scripts/install.sh && ")
    assert first.endswith("cd examples/quickstart && trigger-local dev")


def test_readme_quickstart_block_runs_literally(daemon: DaemonProcess, tmp_path: Path) -> None:
    daemon.register(ROOT / "examples" / "quickstart")
    _, block = quickstart_blocks()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIGGER_")}
    home = tmp_path / "user-home"
    home.mkdir()
    # `trigger-local` from this checkout's venv, as install.sh's link would provide it
    env.update({"HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{CLEAN_PATH}",
                "TRIGGER_LOCAL_HOME": str(daemon.home), "COLUMNS": "200"})
    ran = run_block(block, env, cwd=tmp_path)
    assert [r.line for r in ran] == block
