"""Put pip into the running interpreter's venv when its Python has no ensurepip.

Debian and Ubuntu ship `python3 -m venv` without ensurepip unless the python3-venv package is
installed, and a fresh machine often lacks it. scripts/install.sh then makes the venv with
`--without-pip` and runs this with the venv's python: it downloads the newest pip wheel from
PyPI (checking its sha256), and lets that wheel install itself (a wheel is a zip archive
Python can run from).

Standard library only: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

INDEX = os.environ.get("TRIGGER_LOCAL_PIP_JSON_URL", "https://pypi.org/pypi/pip/json")
TIMEOUT_S = 60


def newest_wheel() -> tuple[str, str, str]:
    """(file name, URL, sha256) of the newest pip release's wheel."""
    with urllib.request.urlopen(INDEX, timeout=TIMEOUT_S) as response:
        release = json.load(response)
    for file in release["urls"]:
        if file["packagetype"] == "bdist_wheel" and file["filename"].endswith("-py3-none-any.whl"):
            # a mirror may answer with URLs relative to the JSON document
            url = urllib.parse.urljoin(INDEX, file["url"])
            return file["filename"], url, file["digests"]["sha256"]
    raise RuntimeError(f"no pip wheel in {INDEX}")


def main() -> int:
    try:
        name, url, sha256 = newest_wheel()
        with tempfile.TemporaryDirectory() as tmp:
            wheel = os.path.join(tmp, name)
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
                data = response.read()
            if hashlib.sha256(data).hexdigest() != sha256:
                raise RuntimeError(f"{name} does not match the sha256 PyPI lists for it")
            with open(wheel, "wb") as fh:
                fh.write(data)
            # `python pip.whl/pip install pip.whl`: pip runs from its own wheel and installs it.
            subprocess.run([sys.executable, os.path.join(wheel, "pip"), "install", "--quiet",
                            "--disable-pip-version-check", "--no-index", wheel], check=True)
    except (OSError, RuntimeError, ValueError, KeyError, subprocess.CalledProcessError) as exc:
        print(f"bootstrap_pip: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"Bootstrapped {name[:-len('-py3-none-any.whl')]} from PyPI.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
