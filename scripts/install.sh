#!/usr/bin/env bash
# Install trigger-local from this checkout for the current user, without touching the system
# Python: a virtual environment in <checkout>/.venv, and a `trigger-local` link in
# ~/.local/bin (TRIGGER_LOCAL_BIN_DIR overrides where the link goes).
#
# Needs only python3 >= 3.11 (PYTHON=/path/to/python3 picks one). A python3 without ensurepip
# (Debian/Ubuntu without the python3-venv package) gets a venv made --without-pip, and pip is
# bootstrapped into it from PyPI (scripts/bootstrap_pip.py). Running it again is quick: pip
# runs only when pyproject.toml changed since the last install.
#
# Written for bash 3.2 too (macOS's /bin/bash): no associative arrays, no readlink -f.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd -P)
VENV="$ROOT/.venv"
BIN_DIR="${TRIGGER_LOCAL_BIN_DIR:-$HOME/.local/bin}"
STAMP="$VENV/.trigger-local-install"

say() { printf '%s\n' "$*" >&2; }
die() { say "install.sh: $*"; exit 1; }

python_ok() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in ${PYTHON:-} python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# What a finished install recorded: the checkout and its pyproject.toml, hashed by the venv's
# own python (sha256sum is not on macOS, shasum is not on every Linux).
install_key() {
    "$VENV/bin/python" -c 'import hashlib, sys; print(sys.argv[1], hashlib.sha256(open(sys.argv[2], "rb").read()).hexdigest())' \
        "$ROOT" "$ROOT/pyproject.toml"
}

make_venv() {
    local py
    py=$(find_python) || die "needs Python 3.11 or newer as python3 (found: $(command -v python3 || echo none)). Install it (Debian/Ubuntu: sudo apt install python3; macOS: brew install python@3.12 or python.org), or point PYTHON=/path/to/python3.11 at one."
    say "Creating $VENV with $py"
    # Debian's python3 has no ensurepip without python3-venv, and a mixed Debian release can
    # have one that fails: either way, a venv without pip plus pip from PyPI does the job.
    if ! "$py" -c 'import ensurepip' >/dev/null 2>&1 || ! "$py" -m venv --clear "$VENV" >/dev/null 2>&1; then
        say "$py cannot put pip into a venv (no working ensurepip): bootstrapping pip from PyPI"
        "$py" -m venv --clear --without-pip "$VENV"
        "$VENV/bin/python" "$ROOT/scripts/bootstrap_pip.py" \
            || die "could not bootstrap pip into $VENV. Install your system's venv package (Debian/Ubuntu: sudo apt install python3-venv) and run this again."
    fi
}

link_command() {
    local target="$VENV/bin/trigger-local" link="$BIN_DIR/trigger-local"
    mkdir -p "$BIN_DIR"
    if [ -e "$link" ] && [ ! -L "$link" ]; then
        say "Left $link alone: it is not a link this script made. Use $target, or remove $link and run this again."
        return 0
    fi
    ln -sfn "$target" "$link"
    say "Linked $link -> $target"
    case ":$PATH:" in
        *":$BIN_DIR:"*) ;;
        *) say "$BIN_DIR is not on your PATH. In each new terminal run (or add to ~/.bashrc or ~/.zshrc):"
           say "    export PATH=\"$BIN_DIR:\$PATH\"" ;;
    esac
}

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    make_venv
elif ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    make_venv  # a venv without pip (an earlier run stopped half-way): start again
fi

if [ -f "$STAMP" ] && [ -x "$VENV/bin/trigger-local" ] && [ "$(cat "$STAMP")" = "$(install_key)" ]; then
    say "trigger-local is already installed in $VENV (pyproject.toml unchanged)."
else
    say "Installing trigger-local and its dependencies into $VENV (a minute or so the first time)..."
    # pip's own output (and the build backend's warnings) go to a log, shown only on failure
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e "$ROOT" > "$VENV/install.log" 2>&1; then
        tail -n 40 "$VENV/install.log" >&2
        die "pip could not install trigger-local (the whole log: $VENV/install.log)."
    fi
    install_key > "$STAMP"
fi
"$VENV/bin/trigger-local" --version >/dev/null || die "$VENV/bin/trigger-local does not run; remove $VENV and run this again."
link_command
say "Done: $("$VENV/bin/trigger-local" --version)."
