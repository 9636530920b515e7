"""Doctor's view of checkpoints: what the running daemon decided at start (its cached
`criu check`), why waiting runs are held if it cannot checkpoint (or replayed, once a dump failed
at run time), and the disk its checkpoints use."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..config import DaemonSettings
from .daemon_cmds import running_daemon

SETUP_FIX = ("Run `sudo bash scripts/setup-criu.sh --yes-upgrade-libc` (installs CRIU 4 from "
             "Debian 13; upgrades libc6) and restart the daemon; until then waiting runs are held "
             "in memory.")


RUNTIME_FIX = ("`criu check` passed but a real dump failed (its error is above and in the "
               "daemon log): check CRIU's limits in this environment (containers often lack "
               "CAP_SYS_RESOURCE), then restart the daemon; set `TRIGGER_LOCAL_CHECKPOINTS=off` "
               "to skip CRIU (long waits are then evicted after `evict_after_s` and resume by "
               "replay). Runs of async tasks never need CRIU.")


DIR_FIX = ("Point TRIGGER_LOCAL_CHECKPOINT_DIR at a directory this user can write (or unset it "
           "for <home>/checkpoints) and restart the daemon.")


def _unwritable(folder: Path) -> str | None:
    """Why checkpoint images cannot go to `folder` (None: they can). It need not exist yet: the
    daemon makes it, so its nearest existing parent must be a writable directory."""
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    try:  # a real try: root passes os.access everywhere, also on /proc or a read-only mount
        os.rmdir(tempfile.mkdtemp(prefix=".doctor-", dir=existing))
    except OSError as exc:
        return f"cannot create a directory in {existing}: {exc.strerror or exc}"
    return None


def daemon_checkpoints(settings: DaemonSettings) -> dict[str, Any] | None:
    """The running daemon's `executor.checkpoints` status, or None (no daemon, or no answer)."""
    info = running_daemon(settings.home)
    if not info or info.get("executor") != "process":
        return None
    try:
        from ..sdk.client import get_sync_client

        executor = get_sync_client().status().get("executor") or {}
    except Exception:  # the daemon went away meanwhile, or refused our key: nothing to add
        return None
    found = executor.get("checkpoints")
    return found if isinstance(found, dict) else None


def checkpoint_check(settings: DaemonSettings) -> tuple[str, str, str, str] | None:
    """(level, detail, fix, CRIU's own words) for the running daemon's checkpoints, or None
    without a daemon."""
    status = daemon_checkpoints(settings)
    if status is None:
        return None
    if not status.get("available"):
        reason, said = str(status.get("reason")), str(status.get("detail") or "")
        if status.get("replays"):  # a dump failed at run time (executors/checkpoints.py)
            return "warn", ("the daemon resumes waiting runs by replay instead of "
                            f"checkpointing them: {reason}"), RUNTIME_FIX, said
        return "warn", ("the daemon holds waiting runs instead of checkpointing them: "
                        f"{reason}"), SETUP_FIX, said
    problem = _unwritable(Path(str(status.get("dir"))))
    if problem:  # every dump then fails and the run is held: only the daemon log said so
        return "warn", (f"the daemon cannot write checkpoints to {status.get('dir')} ({problem}): "
                        "waiting runs are held instead"), DIR_FIX, ""
    mib = int(status.get("bytes") or 0) / (1024 * 1024)
    return "ok", (f"the daemon checkpoints waiting runs (CRIU {status.get('criu_version')}); "
                  f"{status.get('count', 0)} checkpoint(s) on disk, {mib:.1f} MiB in "
                  f"{status.get('dir')}"), "", ""
