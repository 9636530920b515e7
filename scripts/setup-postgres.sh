#!/usr/bin/env bash
# Host setup for the PostgreSQL store's tests (Debian/Ubuntu, as root): Debian's `postgresql`
# package, for its server binaries (initdb, pg_ctl, postgres). No cluster is started here: the
# tests start a private one on a loopback port in a temporary directory (tests/pg_cluster.py),
# as the `postgres` user (initdb refuses to run as root). Debian's own cluster service, if the
# package created one, is left as it is. Idempotent and quiet: does nothing when the binaries
# are there.
set -euo pipefail

pg_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]] && { echo "$dir"; return 0; }
    done
    return 1
}

if bin=$(pg_bin); then
    echo "setup-postgres: $("$bin/postgres" --version) in $bin"
    exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
    echo "setup-postgres: run as root to install Debian's postgresql package" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null; then
    echo "setup-postgres: only Debian/Ubuntu (apt) is supported; install PostgreSQL >= 13 yourself" >&2
    exit 1
fi
started=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends postgresql >/dev/null
bin=$(pg_bin) || { echo "setup-postgres: postgresql installed but no initdb found" >&2; exit 1; }
echo "setup-postgres: $("$bin/postgres" --version) installed in $(( $(date +%s) - started )) s"
