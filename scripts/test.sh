#!/usr/bin/env bash
# Install what the tests need and run them all: lint, then the whole pytest suite
# (unit, API, CLI, and end-to-end tests against real daemon processes).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
python3 -m ruff check trigger_local tui tests scripts
python3 -m pytest "$@"
