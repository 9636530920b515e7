"""Checks of the daemon's settings as `TRIGGER_LOCAL_<NAME>` variables give them: the type of
each, and its range (docs/configuration.md, "Start-up errors are one line")."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ValidationError
from .limits import MAX_DURATION_S, MAX_PAYLOAD_LIMIT_BYTES

MIB = 1024 * 1024


def coerce_setting(type_name: Any, raw: str, name: str) -> Any:
    text = str(type_name)
    try:
        if text == "int":
            return int(raw)
        if text == "float":
            return float(raw)
        if text == "bool":
            if raw.strip().lower() not in _BOOLS:  # "perhaps" used to read as false
                raise ValueError(raw)
            return raw.strip().lower() in ("1", "true", "yes", "on")
    except ValueError as exc:  # "is not a valid int" said neither what to give nor where
        raise ValidationError(f"TRIGGER_LOCAL_{name.upper()}={raw!r} is not {_KINDS[text]}: "
                              "set it to one, or unset it for the default "
                              "(docs/configuration.md)") from exc
    return raw


_KINDS = {"int": "a whole number", "float": "a number",
          "bool": "true or false (or 1/0, yes/no, on/off)"}


_BOOLS = ("1", "true", "yes", "on", "0", "false", "no", "off", "")
#: the smallest value each numeric setting takes (docs/configuration.md says what 0 means
#: where it is allowed); a value below, or NaN or infinity, used to be taken as it was: a
#: concurrency of -1 started no run, a NaN grace never ended
_AT_LEAST: dict[str, float] = {
    "concurrency": 1, "max_processes": 1, "spawn_concurrency": 0, "warm_runs_per_process": 1,
    "warm_idle_per_version": 0, "runs_per_process": 1, "payload_limit_bytes": 1024,
    "log_limit_bytes": 1024,
    "shutdown_grace_s": 0, "hold_threshold_s": 0, "evict_after_s": 0, "max_held_runs": 0,
    "process_timer_grace_s": 0,
    "freeze_grace_s": 0, "db_check_s": 0, "lease_timeout_s": 0.1, "loop_failure_limit": 1,
    "retention_days": 0, "compact_after_s": 0, "stream_retention_s": 0, "realtime_hold_s": 0}
#: the largest: a time past 10 years (limits.MAX_DURATION_S) overflowed a timer (a
#: `db_check_s` of 1e300 raised OverflowError on a thread), a count past a million is a typo;
#: payloads stop at 512 MiB, under SQLite's 1e9-byte limit on a value with its JSON around it
_AT_MOST: dict[str, float] = {
    **{name: MAX_DURATION_S for name in _AT_LEAST if name.endswith("_s")},
    **{name: 1_000_000 for name in _AT_LEAST if not name.endswith(("_s", "_days", "_bytes"))},
    "retention_days": MAX_DURATION_S / 86400, "payload_limit_bytes": MAX_PAYLOAD_LIMIT_BYTES,
    "log_limit_bytes": 1024**4}
_CHOICES = {"checkpoints": ("auto", "off")}  # the executor is checked at start (daemon_core)
_WAIT_KINDS = ("duration", "token", "run", "batch")


def check_setting(name: str, raw: str, value: Any) -> Any:
    """`value` of TRIGGER_LOCAL_<NAME> when it is in range; ValidationError saying what is."""
    env = f"TRIGGER_LOCAL_{name.upper()}={raw!r}"
    low = _AT_LEAST.get(name)
    if low is not None and not (math.isfinite(value) and low <= value <= _AT_MOST[name]):
        raise ValidationError(f"{env}: must be a number of at least {low:g} and at most "
                              f"{_AT_MOST[name]:,.0f} (docs/configuration.md)")
    if name in _CHOICES and value not in _CHOICES[name]:
        raise ValidationError(f"{env}: must be one of {', '.join(_CHOICES[name])} "
                              "(docs/configuration.md)")
    if name == "checkpoint_waits":
        unknown = [k for k in (w.strip() for w in value.split(",")) if k and k not in _WAIT_KINDS]
        if unknown:
            raise ValidationError(f"{env}: {', '.join(map(repr, unknown))} is not a kind of "
                                  f"wait: give a comma list of {', '.join(_WAIT_KINDS)} "
                                  "(docs/configuration.md)")
    return value


#: what task processes read from the environment they get (the daemon's, or `dev`'s terminal
#: and `.env`): docs/configuration.md's "(task process)" rows
TASK_SWITCHES = ("TRIGGER_LOCAL_WORKER_CHANNEL", "TRIGGER_LOCAL_WORKER_TIMERS")
ORPHAN_ENV = "TRIGGER_LOCAL_ORPHAN_TIMEOUT_S"


def check_task_env(env: Mapping[str, str]) -> None:
    """The task processes' settings in `env`, checked: a value they cannot use was taken as the
    default in silence (`TRIGGER_LOCAL_WORKER_CHANNEL=OFF` left the channel on, an orphan
    timeout of `5m` was 300 s)."""
    for name in TASK_SWITCHES:
        raw = env.get(name)
        if raw is not None and raw not in ("on", "off"):
            raise ValidationError(f"{name}={raw!r}: must be on or off (docs/configuration.md)")
    raw = env.get(ORPHAN_ENV)
    if raw is None:
        return
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_DURATION_S):
        raise ValidationError(f"{ORPHAN_ENV}={raw!r}: must be a number of seconds from 0 to "
                              f"{MAX_DURATION_S:,.0f} (docs/configuration.md)")


#: the `TRIGGER_LOCAL_*` variables read other than the daemon's settings: by the CLI and the
#: SDK (the project, the install directory), by task processes (given by the daemon or set by
#: the user: docs/configuration.md), by the setup scripts and by the tests
OTHER_VARIABLES = frozenset({
    "PROJECT", "BIN_DIR", "DEBUG", "PIP_JSON_URL", "BASE_IMAGE", "NODE_CACHE", "IMAGE",
    "ORPHAN_TIMEOUT_S", "WORKER_CHANNEL", "WORKER_TIMERS", "WORKER_HTTP", "WORKER_ID",
    "WORKER_TOKEN", "DAEMON_URL", "DAEMON_INFO", "VERSION_ID", "PROJECT_DIR", "TASK_DIRS",
    "TASK_FILES", "UMASK", "LOG_SPOOL", "HOME_MARK", "TEST_PAUSE_BEFORE_CHECKPOINT_RECORD_S"})


def unknown_variables(env: Mapping[str, str], settings: Iterable[str]) -> list[str]:
    """A line for each `TRIGGER_LOCAL_*` variable in `env` that nothing reads, naming the
    setting it is closest to: without it, a setting's name misspelled (CONCURENCY for
    CONCURRENCY) is ignored without a word, and the daemon runs on the default."""
    known = {name.upper() for name in settings} | OTHER_VARIABLES
    lines = []
    for var in sorted(env):
        name = var.removeprefix("TRIGGER_LOCAL_")
        if name == var or name in known:
            continue
        # upper case: `TRIGGER_LOCAL_concurrency` (names are case-sensitive) had no guess
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean TRIGGER_LOCAL_{close[0]}? " if close else ""
        lines.append(f"TRIGGER_LOCAL_{name} is not a setting and is ignored: {hint}"
                     "docs/configuration.md lists them")
    return lines
