#!/usr/bin/env bash
# Install what the tests need and run them all: lint (ruff), types (mypy --strict, the
# settings in pyproject.toml), then the whole pytest suite (unit, API, CLI, and end-to-end
# tests against real daemon processes).
#
# Everything goes into ./.venv (made with --system-site-packages, so packages the machine
# already has are reused), so running this never changes another checkout's install.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv --system-site-packages .venv
fi
PY=.venv/bin/python
"$PY" -m pip install --quiet --disable-pip-version-check -e '.[test]'
"$PY" -m ruff check trigger_local tui tests scripts
"$PY" -m mypy trigger_local tui
"$PY" -m pytest "$@"
