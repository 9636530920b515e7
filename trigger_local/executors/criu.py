"""The CRIU command line, and nothing else: check, dump, restore (docs/checkpoints.md).

Every call runs the `criu` binary as a subprocess with a log file in the images directory, so
a failure can quote CRIU's own explanation."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import CriuError
from .workers import log_tail

CHECK_TIMEOUT_S = 30.0
DUMP_TIMEOUT_S = 60.0


@dataclass
class Capability:
    ok: bool
    #: why not (empty when ok), in one short line that says what to do: status, doctor and a
    #: held run's reason show it
    reason: str
    version: str = ""
    #: `criu check` passed, yet a dump failed while the daemon ran: it replays waits instead
    failed_at_run_time: bool = False
    #: CRIU's own words behind `reason` (its `criu check` output, often several hundred
    #: characters): in the daemon log, `status --json` and `doctor --verbose`
    detail: str = ""


async def _run(argv: list[str], timeout_s: float) -> tuple[int, str]:
    """Run a command to its end; (exit code, its output). Spawned with posix_spawn (vfork-like)
    and awaited through a pidfd: the event loop's own subprocess spawn forks the whole daemon,
    ~8 ms more per call under uvloop (10 ms against 2 ms for `true`), paid twice per checkpoint."""
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryFile() as out:
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, out.fileno(), 1), (os.POSIX_SPAWN_DUP2, out.fileno(), 2)]
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)  # noqa: ASYNC221 - returns at exec
        pidfd = os.pidfd_open(pid)
        exited: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, readable)
        timed_out = False
        try:
            await asyncio.wait_for(exited, timeout_s)
        except TimeoutError:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            if not exited.done() and not timed_out:  # cancelled: let it finish, reaped aside
                threading.Thread(target=os.waitpid, args=(pid, 0), daemon=True).start()
        # our child, unknown to the event loop: collect it (it has exited, or exits on SIGKILL)
        _, status = os.waitpid(pid, 0)  # noqa: ASYNC222 - the process is already gone
        if timed_out:
            return -1, f"{argv[0]} {argv[1]} did not finish within {timeout_s:.0f} s"
        out.seek(0)
        return os.waitstatus_to_exitcode(status), out.read().decode(errors="replace").strip()


async def check(criu: str) -> Capability:
    """Can this host checkpoint processes? Runs `criu check` once; the daemon caches the answer."""
    path = shutil.which(criu)
    if path is None:
        return Capability(False, f"CRIU is not installed ({criu!r} not found): install CRIU >= 4 "
                                 "with `sudo bash scripts/setup-criu.sh --yes-upgrade-libc`")
    code, out = await _run([path, "--version"], CHECK_TIMEOUT_S)
    version = next((line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Version")), "")
    if os.geteuid() != 0 and not _has_checkpoint_cap():
        return Capability(False, "CRIU needs root or CAP_CHECKPOINT_RESTORE; the daemon has "
                                 "neither", version)
    code, out = await _run([path, "check"], CHECK_TIMEOUT_S)
    if code != 0:
        return Capability(False, check_failed(version), version,
                          detail=out or f"`criu check` exited with code {code}, saying nothing")
    return Capability(True, "", version)


def check_failed(version: str) -> str:
    """One line for a failed `criu check` (its output, ~300 characters of CRIU internals, is
    the Capability's `detail`): an older CRIU than 4 is the usual cause (Debian 12's 3.17)."""
    major = version.split(".", 1)[0]
    if major.isdigit() and int(major) >= 4:
        return (f"`criu check` fails with CRIU {version} on this host: `trigger-local doctor "
                "--verbose` shows CRIU's output")
    return (f"`criu check` fails with CRIU {version or 'of an unknown version'}; 4 or newer "
            "is needed: run scripts/setup-criu.sh")


def _has_checkpoint_cap() -> bool:
    # CAP_CHECKPOINT_RESTORE is capability 40 (Linux 5.9+)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> 40 & 1)
    except (OSError, ValueError):
        pass
    return False


def dump_argv(criu: str, pid: int, images: Path) -> list[str]:
    """The dump command line (also what scripts/bench_criu.py runs by hand)."""
    return [criu, "dump", "-t", str(pid), "-D", str(images), "-o", "dump.log", "-v2",
            "--file-locks"]


def restore_argv(criu: str, images: Path) -> list[str]:
    """The restore command line: detached (`criu` returns once the process runs again) and as a
    sibling, so the restored process is a child of the caller (the daemon), not of init. The
    caller must reap it; in exchange its pid is free as soon as it exits or is dumped again.
    (Reparented to init, the zombie of a re-dumped process lingered until init reaped it, up
    to 2 s on this project's VMs, and the next restore had to wait for its pid.)"""
    return [criu, "restore", "-d", "--restore-sibling", "-D", str(images), "-o", "restore.log",
            "-v2", "--file-locks"]


async def dump(criu: str, pid: int, images: Path) -> float:
    """Freeze `pid` (and its children) into `images`; the process is gone afterwards.
    Returns the time taken in ms. On failure CRIU leaves the process running."""
    images.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    code, out = await _run(dump_argv(criu, pid, images), DUMP_TIMEOUT_S)
    if code != 0:
        raise CriuError(f"criu dump of pid {pid} failed (exit {code}). {out}\n"
                        f"--- end of {images / 'dump.log'} ---\n{_errors(images / 'dump.log')}")
    return (time.monotonic() - started) * 1000


async def restore(criu: str, images: Path) -> float:
    """Restore the process tree in `images`, detached, as our child (it keeps its original pid;
    reap it with sockets.reap). Returns ms."""
    if not (images / "inventory.img").exists():
        raise CriuError(f"The checkpoint images are gone: {images} has no inventory.img "
                        "(the checkpoint directory was deleted?)")
    started = time.monotonic()
    code, out = await _run(restore_argv(criu, images), DUMP_TIMEOUT_S)
    if code != 0:
        raise CriuError(f"criu restore from {images} failed (exit {code}). {out}\n"
                        f"--- end of {images / 'restore.log'} ---\n"
                        f"{_errors(images / 'restore.log')}")
    return (time.monotonic() - started) * 1000


def tracer_of(pid: int) -> int:
    """The pid tracing `pid` (CRIU, while it dumps it), 0 when none or the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


async def wait_untraced(pid: int, timeout_s: float) -> None:
    """Until no CRIU dump holds `pid` (a dump started by a daemon that died goes on without it)."""
    deadline = time.monotonic() + timeout_s
    while tracer_of(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def _errors(log: Path) -> str:
    """The lines of a CRIU log that explain a failure (errors first), else its tail."""
    tail = log_tail(log, 8000)
    errors = [line for line in tail.splitlines() if "Error" in line or "error" in line]
    return "\n".join(errors[-12:]) if errors else "\n".join(tail.splitlines()[-12:])


def images_size(images: Path) -> int:
    total = 0
    for entry in images.rglob("*"):
        try:
            if entry.is_file() and not entry.name.endswith(".log"):
                total += entry.stat().st_size
        except OSError:
            pass
    return total
