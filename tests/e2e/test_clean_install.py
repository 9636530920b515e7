"""`pip install .` into a clean venv (no system site packages, not editable) is enough to run a
schema task: every import the daemon makes is a declared dependency (`jsonschema` was not).

The checkout's build inputs (pyproject.toml, README.md, the packages, uncommitted changes
included) are copied to a temporary directory and installed from there, so the build leaves
nothing in the checkout. pip's cache is the user's, as on a developer machine. Measured on the
2-core dev machine (2026-11-29): ≈ 20 s with a warm cache (venv ≈ 4 s, pip install ≈ 14 s,
daemon and two triggers ≈ 2 s); with pip's cache off (PIP_NO_CACHE_DIR=1, every wheel fetched
from the index) ≈ 18 s, the same within noise: this machine's index is close, and most of the
install is unpacking wheels and building ours."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import DaemonProcess, write_project

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BUILD_INPUTS = ("pyproject.toml", "README.md", "trigger_local", "tui")
INSTALL_TIMEOUT_S = 600


def _copy_checkout(dest: Path) -> Path:
    dest.mkdir()
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)
    return dest


def _run(argv: list[str], cwd: Path, timeout_s: float) -> str:
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, (f"{' '.join(argv)} "
                                  f"failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def test_a_clean_pip_install_runs_a_schema_task(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTHONPATH", raising=False)
    started = time.monotonic()
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path, 120)
    python = str(venv / "bin" / "python")
    made_s = time.monotonic() - started
    source = _copy_checkout(tmp_path / "checkout")
    _run([python, "-m", "pip", "install", "--quiet", str(source)], tmp_path, INSTALL_TIMEOUT_S)
    installed_s = time.monotonic() - started - made_s
    where = _run([python, "-c",
                  "import sys, trigger_local; print(trigger_local.__file__, sys.flags.no_site)"],
                 tmp_path, 60)
    assert where.startswith(str(venv)), f"not the installed copy: {where}"
    no_system = _run([python, "-c",
                      "import sys; print([p for p in sys.path if 'site-packages' in p])"],
                     tmp_path, 60)
    assert str(ROOT / ".venv") not in no_system and "/usr/lib/python3" not in no_system, no_system

    daemon = DaemonProcess(tmp_path / "home", env={"TRIGGER_LOCAL_HOME": str(tmp_path / "home")},
                           python=python, cwd=tmp_path)
    try:
        daemon.start()
        daemon.register(write_project(tmp_path / "project"))
        ok = daemon.wait_status(daemon.trigger("resize", {"width": 3, "height": 4}))
        assert ok["status"] == "COMPLETED" and ok["output"] == {"area": 12}, ok
        refused = daemon.api("POST", "/api/v1/tasks/resize/trigger",
                             json={"payload": json.dumps({"width": "wide", "height": 2}),
                                   "options": {"payloadType": "application/json"}})
        assert refused.status_code == 422, refused.text
        assert "width" in refused.json()["error"], refused.text
    finally:
        daemon.close()
    assert "Traceback" not in daemon.log_text(), daemon.log_text()[-3000:]
    print(f"\nvenv: {made_s:.1f}s, pip install: {installed_s:.1f}s, "
          f"total: {time.monotonic() - started:.1f}s")
