#!/usr/bin/env bash
# Host setup for the docker executor (Debian/Ubuntu, as root): a Docker engine started with
# --experimental (needed by `docker checkpoint`) and the offline base image. Idempotent: each
# step is skipped when already done. Engine log: /var/log/trigger-local-dockerd.log
set -euo pipefail
cd "$(dirname "$0")/.."
LOG=/var/log/trigger-local-dockerd.log

engine_up() { docker info >/dev/null 2>&1; }

if ! engine_up; then
    if ! command -v dockerd >/dev/null; then
        echo "installing docker.io"
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q docker.io >/dev/null
    fi
    if ! engine_up; then
        echo "starting dockerd --experimental (log: $LOG)"
        # setsid: the engine outlives this script and the shell that ran it
        setsid dockerd --experimental >>"$LOG" 2>&1 < /dev/null &
        for _ in $(seq 1 120); do
            engine_up && break
            sleep 0.5
        done
    fi
fi
if ! engine_up; then
    echo "the Docker engine did not come up; last lines of $LOG:" >&2
    tail -n 20 "$LOG" >&2 || true
    exit 1
fi
bash scripts/make-base-image.sh "${TRIGGER_LOCAL_BASE_IMAGE:-trigger-local-base:bookworm}"
docker info --format 'engine {{.ServerVersion}}, experimental={{.ExperimentalBuild}}'
