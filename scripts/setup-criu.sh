#!/usr/bin/env bash
# Install CRIU >= 4 on Debian/Ubuntu and check that it works on this kernel.
#
# Debian 12's own criu (3.17) fails `criu check` on recent kernels ("Unexpected rt vDSO area
# bounds"), so this adds a Debian 13 (trixie) source with a LOW pin priority (nothing else is
# taken from it) and installs `criu` from there. That pulls a newer libc6 onto the system:
# fine on a throwaway CI host, a real change on your own machine. Hence the opt-in:
#
#   sudo bash scripts/setup-criu.sh --yes-upgrade-libc   # or CI=true
#
# Idempotent: does nothing when a working CRIU >= 4 is already installed.
set -euo pipefail

want_major=4
opt_in=false
[[ "${1:-}" == "--yes-upgrade-libc" || "${CI:-}" == "true" ]] && opt_in=true

criu_ok() {
    command -v criu >/dev/null || return 1
    local major
    major=$(criu --version 2>/dev/null | sed -n 's/^Version: \([0-9]*\).*/\1/p')
    [[ -n "$major" && "$major" -ge "$want_major" ]] || return 1
    criu check >/dev/null 2>&1
}

if criu_ok; then
    echo "setup-criu: $(criu --version | head -1) works (criu check: Looks good)"
    exit 0
fi

if [[ "$(id -u)" != 0 ]]; then
    echo "setup-criu: run as root (CRIU needs root or CAP_CHECKPOINT_RESTORE)" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "setup-criu: only Debian/Ubuntu (apt) is supported; install CRIU >= $want_major yourself" >&2
    exit 1
fi
if [[ "$opt_in" != true ]]; then
    cat >&2 <<'MSG'
setup-criu: CRIU >= 4 is not installed. Installing it adds a Debian 13 (trixie) apt source
(pinned low: only criu and what it needs come from it) and UPGRADES libc6. Re-run with
--yes-upgrade-libc (or CI=true) to do that. Without CRIU, waiting runs are held, not checkpointed.
MSG
    exit 2
fi

started=$(date +%s)
if [[ ! -f /etc/apt/sources.list.d/trigger-local-trixie.list ]]; then
    echo "deb http://deb.debian.org/debian trixie main" > /etc/apt/sources.list.d/trigger-local-trixie.list
fi
cat > /etc/apt/preferences.d/trigger-local-trixie <<'PIN'
# only packages asked for with -t trixie (and their dependencies) come from trixie
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends: criu recommends python3-pycriu, which would pull Debian 13's python3
# (3.13) over the system's own python3; nothing here uses pycriu or crit
apt-get install -y -qq --no-install-recommends -t trixie criu >/dev/null
if ! criu check; then
    echo "setup-criu: criu is installed but \`criu check\` fails on this kernel (see above)" >&2
    exit 1
fi
echo "setup-criu: $(criu --version | head -1) installed and working in $(( $(date +%s) - started )) s"
