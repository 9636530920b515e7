"""Settings: the daemon's (home directory, address, limits) and a project's (`trigger.toml`).

Every setting has a default that works on a laptop with no configuration at all; each one is
documented in docs/configuration.md."""

from __future__ import annotations

import os
import secrets
import signal
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .durations import parse_duration
from .errors import ValidationError
from .machines import check_machine
from .projects import DEFAULT_PROJECT, check_project_ref, derive_project_ref
from .sdk.retry import Retry
from .settings_checks import MIB, check_setting, coerce_setting, unknown_variables

DEFAULT_PORT = 8030
#: stops the daemon like SIGTERM, and kills the processes of waiting runs too (`down
#: --kill-waiting`)
KILL_WAITING_SIGNAL = signal.SIGUSR1
#: sent by the executor to the process of a run canceled while it runs: the runtime runs the
#: task's on_cancel hooks and exits (docs/hooks.md); SIGKILL follows after CANCEL_GRACE_S
CANCEL_SIGNAL = signal.SIGUSR2
#: the path of the home's daemon.json, given to task processes: one whose daemon stopped reads
#: the next daemon's url there when the old one refuses connections (it may listen elsewhere)
DAEMON_INFO_ENV = "TRIGGER_LOCAL_DAEMON_INFO"


def home_dir() -> Path:
    return Path(os.environ.get("TRIGGER_LOCAL_HOME") or Path.home() / ".trigger-local")


@dataclass
class DaemonSettings:
    home: Path = field(default_factory=home_dir)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    executor: str = "process"
    #: runs executing at once across all queues (a queue's own limit applies under it)
    concurrency: int = 25
    #: live task processes at once: executing, held while waiting, and idle warm ones
    max_processes: int = 100
    #: task processes starting at once (0: the number of CPUs, at least 2). Imports are CPU-bound:
    #: 50 processes started together on 2 CPUs are all ready only after seconds, while a few at
    #: a time are ready at once and take the queued runs in turn
    spawn_concurrency: int = 0
    #: how many runs one process may take in turn (1 = a fresh process per attempt). A boot
    #: costs 0.17-0.25 s of CPU: at 1,000 that was 40 % of a no-op run's task-process CPU
    warm_runs_per_process: int = 10_000
    #: idle warm processes kept per version
    warm_idle_per_version: int = 4
    #: runs of async tasks executing at once in one shared task process; its waiting runs do not
    #: count (a waiting run is a suspended coroutine). Sync and `isolated` tasks: one per process
    runs_per_process: int = 10
    #: largest payload, output or metadata accepted, in bytes
    payload_limit_bytes: int = 3 * MIB
    #: the log lines and spans one attempt may store, in bytes of their messages and
    #: attributes; later ones are dropped and one line says how many (engine/log_cap.py)
    log_limit_bytes: int = 64 * MIB
    #: on SIGTERM, how long running attempts get to finish before they are interrupted
    shutdown_grace_s: float = 5.0
    #: duration waits shorter than this are always held; longer ones are checkpointed when CRIU
    #: works and "duration" is in `checkpoint_waits` (docs/checkpoints.md)
    hold_threshold_s: float = 5.0
    #: which kinds of wait are checkpointed (comma list of duration, token, run, batch); child
    #: run and batch waits are held by default: children often finish in well under the
    #: ~0.3 s a dump and restore cost
    checkpoint_waits: str = "duration,token"
    #: a run held waiting longer than this (in a shared process, or a process CRIU did not
    #: freeze) is evicted: its coroutine or process is let go and it resumes by replay when its
    #: wait completes (docs/durability.md, "Eviction"); 0: never evicted for its wait's length
    evict_after_s: float = 30.0
    #: a duration wait whose shared process keeps its timer (docs/waits.md, "Who keeps a wait's
    #: timer") is ended by the daemon's own timer only this long after it is due, unless the
    #: process said first that its timer fired: the daemon's is the backstop
    process_timer_grace_s: float = 1.0
    #: waiting runs held in memory (coroutines and held processes) beyond this are evicted,
    #: the longest waiters first; 0: no bound
    max_held_runs: int = 1000
    #: "auto": checkpoint waiting runs when `criu check` passes at daemon start; "off": always hold
    checkpoints: str = "auto"
    #: the CRIU binary (a name on PATH or a path)
    criu_path: str = "criu"
    #: where checkpoint images go (default: <home>/checkpoints)
    checkpoint_dir: str = ""
    #: after asking to be frozen, the runtime sleeps this long before polling again; the dump
    #: must start within it (a poll's open connection would make the dump fail: the run is held)
    freeze_grace_s: float = 0.5
    #: at start, how long `PRAGMA quick_check` may take on the database (0: no check); a check
    #: that runs out of time lets the daemon start (home.py). 1 s: the check reads ~200 MB/s,
    #: so a million runs (~2 GB) would otherwise hold the start for ~10 s (issue #17)
    db_check_s: float = 1.0
    log_json: bool = False
    #: "" keeps everything in the home's SQLite file; `postgresql://user:pass@host:port/db`
    #: puts the store in PostgreSQL, which several daemons (on several hosts) may share
    #: (docs/scaling.md)
    database_url: str = ""
    #: with PostgreSQL: a daemon whose heartbeat is older than this is gone; what it was
    #: executing is interrupted and queued again by another daemon (docs/scaling.md)
    lease_timeout_s: float = 30.0
    #: a background loop (the dispatcher, the docker engine check) that fails this many rounds in
    #: a row stops the daemon with exit code 1; a full disk never counts (it is waited out)
    loop_failure_limit: int = 20
    #: days a finished run is kept, with its events, snapshots, logs, spans and offloaded
    #: packets (0: forever). 30: the upper end of Trigger.dev's plan-dependent retention; long
    #: enough to look back at last month's failures, short enough that the history stays near
    #: a month of work (docs/configuration.md, "Retention")
    retention_days: float = 30.0
    #: a finished run's history is compacted this long after it ended (its plain status events
    #: and earlier snapshots go); the wait leaves event readers time to see them first
    compact_after_s: float = 3600.0
    #: realtime streams not written for this long are deleted (when a new stream is created)
    stream_retention_s: float = 7 * 24 * 3600.0
    #: how long a realtime long-poll (`live=true`) waits for a change before it answers
    #: "up to date" and the client asks again
    realtime_hold_s: float = 20.0

    @property
    def db_path(self) -> Path:
        return self.home / "trigger-local.db"

    @property
    def url(self) -> str:
        """Where clients reach the daemon (daemon.json, task processes): an IPv6 host in
        brackets, as sdk/client.py's default_url writes it."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") \
            else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def from_env(cls, **overrides: Any) -> DaemonSettings:
        """Defaults, then `TRIGGER_LOCAL_<NAME>` variables, then explicit overrides."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f"TRIGGER_LOCAL_{f.name.upper()}")
            if raw is not None and f.name != "home":
                values[f.name] = check_setting(f.name, raw, coerce_setting(f.type, raw, f.name))
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.home = Path(settings.home)
        return settings


def ignored_variables(env: Mapping[str, str]) -> list[str]:
    """A line for each `TRIGGER_LOCAL_*` variable in `env` that no setting or part reads."""
    return unknown_variables(env, (f.name for f in fields(DaemonSettings)))


def database_url_problem(url: str) -> str | None:
    """What is wrong with a `database_url` (None: nothing, or empty for SQLite)."""
    shown = url.split("@", 1)[-1]  # never echo a password
    if not url:
        return None
    if not url.startswith(("postgresql://", "postgres://")):
        return (f"Unsupported database URL ...{shown!r}: give postgresql://user:pass@host:5432/db, "
                "or nothing for the home's SQLite file.")
    hosts = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]  # as asyncpg reads it
    for host in hosts.split(","):  # libpq's host1:port1,host2:port2 (asyncpg takes it too)
        after = host.rpartition("]")[2]  # past an IPv6 address in brackets
        port = after.rpartition(":")[2] if ":" in after else ""
        if port and not (port.isdigit() and 0 < int(port) <= 65535):
            return (f"The database URL's host {host!r} has the port {port!r}, not a number from "
                    "1 to 65535: give postgresql://user:pass@host:5432/db.")
    return None


def ensure_secret_key(home: Path) -> str:
    """The daemon's secret key, created on first use with mode 0600.

    The file appears only once the whole key is on disk (written beside it, then linked into
    place): a first start on a full disk used to leave it empty, and every later start then
    took "" as the secret, so no client's key was accepted and every project key, an HMAC
    under it, was guessable. An empty file (left that way by an older version) gets a key."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = home / "secret_key"
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
        path.unlink()  # nothing can hold a key derived from "": no client could authenticate
    key = "tr_dev_" + secrets.token_urlsafe(24).replace("-", "a").replace("_", "b")
    partial = home / f".secret_key.{os.getpid()}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(partial, path)  # like O_EXCL: of two first starts, one key wins
        except FileExistsError:
            return path.read_text().strip()
    finally:
        partial.unlink(missing_ok=True)
    return key


@dataclass
class ProjectConfig:
    root: Path
    project: str = DEFAULT_PROJECT
    dirs: list[str] = field(default_factory=lambda: ["trigger"])
    #: `[retry]`: the policy of every task that sets none of its own (keys of `Retry`)
    retry: dict[str, Any] | None = None
    #: the machine preset of every task that sets none
    machine: str | None = None
    #: seconds; the max_duration of every task that sets none
    max_duration: float | None = None
    executor: str | None = None
    build: dict[str, Any] = field(default_factory=dict)
    #: the config names `project` itself (False: derived from the directory's name)
    named: bool = False

    def task_defaults(self) -> dict[str, Any]:
        """The `defaults` a version is registered with (POST /api/v1/local/versions)."""
        return {"retry": self.retry, "machine": self.machine, "maxDuration": self.max_duration}


def find_project_root(start: Path) -> Path | None:
    for path in [start, *start.parents]:
        if (path / "trigger.toml").exists():
            return path
        pyproject = path / "pyproject.toml"
        if pyproject.exists() and _pyproject_table(pyproject) is not None:
            return path
    return None


def _load_toml(path: Path) -> dict[str, Any]:
    """`path` parsed; a file that cannot be read (a directory, not UTF-8, no permission) is a
    ValidationError like bad TOML: each used to reach the user as a traceback."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValidationError(f"{path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{path} is not UTF-8 text (byte {exc.start}): save it as "
                              "UTF-8") from exc
    except OSError as exc:
        raise ValidationError(f"Cannot read {path}: {exc.strerror or exc}") from exc


def _pyproject_table(path: Path) -> dict[str, Any] | None:
    """`[tool.trigger-local]` of a pyproject.toml, None when it has none; a `tool` or
    `tool.trigger-local` that is not a table is an error, not a traceback."""
    tool = _load_toml(path).get("tool", {})
    if not isinstance(tool, dict):
        raise ValidationError(f"tool in {path} must be a table ([tool.trigger-local]), "
                              f"not {tool!r}")
    if "trigger-local" not in tool:
        return None
    table = tool["trigger-local"]
    if not isinstance(table, dict):
        raise ValidationError(f"tool.trigger-local in {path} must be a table of trigger-local "
                              f"settings, not {table!r}")
    return table


def load_project(root: Path) -> ProjectConfig:
    """Read `trigger.toml` (or `[tool.trigger-local]` in pyproject.toml) at `root`."""
    if (root / "trigger.toml").exists():
        data, source = _load_toml(root / "trigger.toml"), "trigger.toml"
    else:
        data = _pyproject_table(root / "pyproject.toml") or {}
        source = "[tool.trigger-local] of pyproject.toml"
    known = {"project", "dirs", "retry", "machine", "max_duration", "executor", "build"}
    unknown = set(data) - known
    if unknown:
        raise ValidationError(f"Unknown keys in {source}: {', '.join(sorted(unknown))} (known: "
                              f"{', '.join(sorted(known))})")
    # each message names the file the value came from: a project configured in pyproject.toml
    # was told to fix a trigger.toml it does not have
    project = check_project_ref(data["project"], f"project in {source}") if "project" in data \
        else derive_project_ref(root)
    return ProjectConfig(root=root, project=project,
                         dirs=check_dirs(data.get("dirs", ["trigger"]), source),
                         retry=check_retry(data.get("retry"), f"[retry] in {source}"),
                         machine=check_default_machine(data.get("machine"),
                                                       f"machine in {source}"),
                         max_duration=check_max_duration(data.get("max_duration"),
                                                         f"max_duration in {source}"),
                         executor=_check_executor(data.get("executor"), source),
                         build=check_build(data.get("build", {}), source),
                         named="project" in data)


def _check_executor(value: Any, source: str = "trigger.toml") -> str | None:
    """`executor`: refused when trigger.toml is read (it used to reach the daemon `dev`
    starts, which refused it only then, or be ignored when a daemon was already running)."""
    if value is None:
        return None
    if value not in ("process", "docker"):
        raise ValidationError(f"Invalid executor in {source} {value!r}: use process or docker")
    return str(value)


def project_ref_of(project_dir: Path) -> str:
    """The ref of the project at `project_dir`: its config's `project`, else derived from the
    directory (also when it has no config at all)."""
    return named_project_ref(project_dir) or derive_project_ref(project_dir)


def named_project_ref(project_dir: Path) -> str | None:
    """The `project` the config at `project_dir` names itself, or None (none there, or it
    names none: `init` writes the derived ref, which is named all the same)."""
    if (project_dir / "trigger.toml").exists() or find_project_root(project_dir) == project_dir:
        config = load_project(project_dir)
        return config.project if config.named else None
    return None


def check_dirs(value: Any, source: str = "trigger.toml") -> list[str]:
    """`dirs`: a directory or a list of them, relative to the project root."""
    dirs = [value] if isinstance(value, str) else value
    if not isinstance(dirs, list) or not dirs or not all(isinstance(d, str) and d for d in dirs):
        raise ValidationError(f"dirs in {source} must be a list of directories of the project "
                              f'(e.g. dirs = ["trigger"]), not {value!r}')
    for folder in dirs:  # task modules are imported by their path inside the project
        if Path(folder).is_absolute() or ".." in Path(folder).parts:
            raise ValidationError(f"dirs in {source} are folders inside the project, relative "
                                  f"to the project root, not {folder!r}")
    return list(dirs)


#: `[build]`'s keys and the TOML types each takes (docs/configuration.md, docs/docker.md)
BUILD_KEYS: dict[str, tuple[type, ...]] = {
    "base_image": (str,), "requirements": (list, str), "apt_packages": (list,),
    "python_version": (str,)}


def check_build(value: Any, source: str = "trigger.toml") -> dict[str, Any]:
    """`[build]` as given, checked: a key after `[build]` belongs to it in TOML, so a top-level
    key written there must be an error, not silently ignored (as for `[retry]`)."""
    if not isinstance(value, dict):
        raise ValidationError(f"[build] in {source} must be a table, not {value!r}")
    unknown = set(value) - set(BUILD_KEYS)
    if unknown:
        raise ValidationError(f"Unknown keys in [build] of {source}: "
                              f"{', '.join(sorted(unknown))} (known: {', '.join(BUILD_KEYS)}; "
                              "a top-level key must come before the first [table])")
    for key, types in BUILD_KEYS.items():
        item = value.get(key)
        if item is None:
            continue
        if not isinstance(item, types) or (isinstance(item, list)
                                           and not all(isinstance(i, str) for i in item)):
            kind = "a list of strings" + (" or a file name" if str in types else "") \
                if list in types else "a string"
            raise ValidationError(f"[build].{key} in {source} must be {kind}, not {item!r}")
    return dict(value)


def check_retry(value: Any, what: str) -> dict[str, Any] | None:
    """A project's retry policy as given (a table of `Retry`'s keys), checked by `Retry`'s rules."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationError(f"{what} must be a table of retry settings, not {value!r}")
    try:  # the same rules as a task's own policy
        Retry.coerce(value)
    except ValidationError as exc:
        raise ValidationError(f"{what}: {exc.message}") from None
    return dict(value)


def check_default_machine(value: Any, what: str) -> str | None:
    if value is None:
        return None
    check_machine(value, what)
    return str(value)


def check_max_duration(value: Any, what: str) -> float | None:
    if value is None:
        return None
    seconds = parse_duration(value, what=what)
    if seconds < 1:
        raise ValidationError(f"{what} must be at least 1 second")
    return seconds
