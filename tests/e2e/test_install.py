"""The first hour, as a new user has it: a fresh copy of the repository (this checkout's
committed HEAD), an empty HOME, a PATH with no pyenv and no venv on it, and the README's first
line pasted as is; then the README's second block, pasted as is "in another terminal", against
the daemon `dev` started; then Ctrl-C on `dev`.

pip downloads everything here (an empty HOME has no pip cache). Measured on the 2-core dev
machine: the install ≈ 12 s, the whole module ≈ 45 s; most of the rest is the block's
`flaky` run waiting out its two retry delays and one CLI start-up (≈ 1 s) per line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pg_cluster import free_port

from .conftest import _kill_workers, wait_for
from .readme_quickstart import quickstart_blocks, run_block

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: how this machine reaches the package registry (a proxy, its CA, a mirror): the machine's,
#: not a Python set-up of the user's, so they pass through to the fresh environment
NETWORK_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "no_proxy",
                "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_INDEX_URL",
                "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_CERT", "PIP_DEFAULT_TIMEOUT")
INSTALL_TIMEOUT_S = 600


@dataclass
class Fresh:
    clone: Path
    home: Path
    env: dict[str, str]


def extract_head(dest: Path) -> None:
    """This checkout's committed HEAD, as a clone would have it (uncommitted changes are not in
    it)."""
    dest.mkdir(parents=True)
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"],
                                 capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"needs this checkout's git history to copy HEAD: {exc}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True, timeout=60)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    base = tmp_path_factory.mktemp("fresh")
    clone, home = base / "trigger-local", base / "home"
    extract_head(clone)
    home.mkdir()
    env = {name: os.environ[name] for name in NETWORK_VARS if name in os.environ}
    # TRIGGER_LOCAL_PORT: the daemon `dev` starts must not take 8030 from whoever uses it here
    env.update({"HOME": str(home), "PATH": CLEAN_PATH, "LANG": "C.UTF-8", "COLUMNS": "200",
                "TRIGGER_LOCAL_PORT": str(free_port())})
    yield Fresh(clone, home, env)
    info = home / ".trigger-local" / "daemon.json"
    if info.exists():  # a test that failed half-way: leave no daemon behind
        pid = int(json.loads(info.read_text()).get("pid") or 0)
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    _kill_workers(home / ".trigger-local")


class Output:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)


def test_readme_first_line_then_the_second_block_on_a_fresh_clone(fresh: Fresh) -> None:
    first, block = quickstart_blocks()
    started = time.monotonic()
    dev = subprocess.Popen(["bash", "-c", first], cwd=fresh.clone, env=fresh.env,
                           stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = Output(dev)
    try:
        wait_for(lambda: "Registered" in output.text() or dev.poll() is not None, INSTALL_TIMEOUT_S,
                 0.2, what="the install, then dev indexing the example")
        assert dev.poll() is None, ("the first line stopped (exit "
                                    f"{dev.returncode}):\n{output.text()}")
        installed_s = time.monotonic() - started
        text = output.text()
        assert "with 5 tasks: approval, flaky, hello, parent, slow-greeting" in text, text
        link = fresh.home / ".local" / "bin" / "trigger-local"
        assert link.resolve() == (fresh.clone / ".venv" / "bin" / "trigger-local").resolve(), text
        block_started = time.monotonic()
        run_block(block, fresh.env, cwd=fresh.home)  # "in another terminal"
        block_s = time.monotonic() - block_started
        os.killpg(dev.pid, signal.SIGINT)
        assert dev.wait(60) == 0, output.text()
        output.thread.join(10)
        assert "Stopped the daemon dev started" in output.text(), output.text()
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait(10)
        if dev.stdout is not None:
            dev.stdout.close()
    print(f"\ninstall + dev indexed: {installed_s:.1f}s, README block: {block_s:.1f}s")


def test_running_the_install_again_is_quick(fresh: Fresh) -> None:
    if not (fresh.clone / ".venv" / "bin" / "trigger-local").exists():
        pytest.fail("the first test of this module did not install; see its failure")
    started = time.monotonic()
    again = subprocess.run(["bash", "scripts/install.sh"], cwd=fresh.clone, env=fresh.env,
                           capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert again.returncode == 0, again.stderr
    assert "already installed" in again.stderr and "Installing" not in again.stderr, again.stderr
    assert took < 20, f"a second run took {took:.1f}s"


def test_install_bootstraps_pip_for_a_python_without_ensurepip(
        fresh: Fresh, tmp_path: Path) -> None:
    """Debian's python3 without the python3-venv package has no ensurepip: `python3 -m venv`
    fails. A module shadowing ensurepip makes this python3 behave the same."""
    clone = tmp_path / "trigger-local"
    extract_head(clone)
    shadow = tmp_path / "no-ensurepip" / "ensurepip"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named "
                                        "'ensurepip'\")\n")
    env = {**fresh.env, "PYTHONPATH": str(shadow.parent),
           "TRIGGER_LOCAL_BIN_DIR": str(tmp_path / "bin")}
    done = subprocess.run(["bash", "scripts/install.sh"], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=INSTALL_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    assert "no working ensurepip): bootstrapping pip from PyPI" in done.stderr, done.stderr
    assert "Bootstrapped pip-" in done.stderr, done.stderr
    version = subprocess.run([str(tmp_path / "bin" / "trigger-local"), "--version"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("trigger-local "), version.stderr
    where = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c",
                            "import trigger_local; print(trigger_local.__file__)"],
                           capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert where.stdout.strip().startswith(str(clone)), where.stdout  # this checkout, editable
