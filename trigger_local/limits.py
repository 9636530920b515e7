"""The bounds every value from outside is held to, in one place (docs/configuration.md, "Limits
and their errors"). The API checks them at the edge so that nothing out of range is stored:
a date in the year 19167375 or an integer past SQLite's 64 bits would otherwise be accepted
and fail later, on every read.

Shared by the daemon, the SDK and the runtime: imports nothing of either."""

from __future__ import annotations

import errno
import json
import re
from typing import Any

from .errors import BadRequestError, JsonTooDeepError

#: the longest duration (delay, ttl, timeouts, waits, idempotency key TTLs, max_duration), and
#: how far from now a date may be: 10 years
MAX_DURATION_S = 10 * 365 * 86400
#: the largest `payload_limit_bytes` a daemon may be given: under SQLite's 1e9-byte limit on a
#: value with its JSON around it
MAX_PAYLOAD_LIMIT_BYTES = 512 * 1024 * 1024
#: room for the JSON around a payload of the largest accepted size (a request body's)
BODY_OVERHEAD_BYTES = 64 * 1024
#: `max_attempts` (trigger option, `Retry`, `[retry]` in trigger.toml)
MAX_ATTEMPTS = 10_000
#: the `priority` trigger option: seconds a run jumps ahead in its queue (30 days)
MAX_PRIORITY_S = 30 * 86400
#: the highest page number of the page-numbered lists (queues, schedules)
MAX_PAGE = 1_000_000
#: a queue's concurrency limit (task definition or the API's override)
MAX_CONCURRENCY_LIMIT = 100_000
#: anything else that is a count or an attempt number and gets stored (SQLite holds 64 bits)
MAX_STORED_INT = 2**53
#: a queue name (`task/<id>` or a custom one), a concurrency key, a token's tag: names shown in
#: tables and completions, and keys of rows
MAX_NAME_LENGTH = 256
#: an idempotency key (Trigger.dev's limit)
MAX_IDEMPOTENCY_KEY_LENGTH = 2048
#: `options.lockToVersion`: a version id (`version_` and 21 characters); room for more, no more
MAX_VERSION_ID_LENGTH = 64
#: how deep JSON may nest, in a request body or in a payload, output or metadata packet:
#: deeper documents are refused before they are parsed (Python's parser recurses)
MAX_JSON_DEPTH = 100
#: Linux starts no process with an environment string ("NAME=value" and its NUL) over 128 KiB
#: (MAX_ARG_STRLEN), nor with arguments and environment over ARG_MAX (2 MiB by default): task
#: processes would never start (E2BIG). `dev`'s environment and a project's stored variables
#: (the envvars API) are each held to these, so both together stay under ARG_MAX.
ENV_VAR_MAX_BYTES = 128 * 1024
ENV_TOTAL_MAX_BYTES = 1024 * 1024
#: stored variables per project and environment slug (the envvars API)
ENV_MAX_COUNT = 10_000

#: C0, DEL and C1 (U+0080-U+009F: U+009B is a one-character CSI to some terminals)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]")


def json_depth_at_most(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when the arrays and objects in `text` nest at most `limit` deep.

    A scan of the raw text (brackets inside strings do not count), so it never recurses;
    text with fewer opening brackets than the limit is accepted without a scan."""
    if isinstance(text, bytes):
        if text.count(b"[") + text.count(b"{") <= limit:
            return True
        text = text.decode("utf-8", errors="replace")
    elif text.count("[") + text.count("{") <= limit:
        return True
    depth = 0
    for char in _NOT_BRACKET.sub("", _STRING.sub("", text)):
        depth += 1 if char in "[{" else -1
        if depth > limit:
            return False
    return True


def loads(text: str | bytes) -> Any:
    """`json.loads`, refusing documents nested deeper than MAX_JSON_DEPTH (JsonTooDeepError)."""
    if not json_depth_at_most(text):
        raise JsonTooDeepError(MAX_JSON_DEPTH)
    return json.loads(text)


def name_problem(value: str, max_length: int = MAX_NAME_LENGTH) -> str | None:
    """What keeps `value` from being a name — 1 to `max_length` characters with no NUL or other
    control character (a name shown in a table, a completion or a log line, where an escape
    sequence would act on the terminal) — as the end of a sentence; None for a good name."""
    if not value or len(value) > max_length:
        return f"must be 1 to {max_length} characters, not {len(value)}"
    if (bad := _CONTROL.search(value)) is not None:
        return f"must not hold control characters (it has {bad.group(0)!r} at {bad.start()})"
    return None


def check_name(value: str, what: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """`value` if `name_problem` finds nothing; BadRequestError naming `what`."""
    if (problem := name_problem(value, max_length)) is not None:
        raise BadRequestError(f"{what} {problem}", field=what)
    return value


def check_queue_name(value: str, what: str) -> str:
    """A queue name: `check_name`'s rules, and more than whitespace (`" "` made a queue no
    table, completion or log line tells apart from none); BadRequestError naming `what`."""
    if not value.strip():
        raise BadRequestError(f"{what} must not be empty or only whitespace", field=what)
    return check_name(value, what)


#: errors of starting a process that the same start would meet again: the run (or version) fails
#: with the reason instead of being tried round after round
PERMANENT_SPAWN_ERRORS = (errno.E2BIG, errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR)


def spawn_failure(exc: OSError, python: str, cwd: str) -> str | None:
    """Why a process could not be started, as a sentence, when starting it again would fail
    the same way; None for a passing failure (out of memory, too many processes)."""
    if exc.errno == errno.E2BIG:
        return ("The task process could not start: its environment is too large (E2BIG). Keep "
                f"each variable under {ENV_VAR_MAX_BYTES:,} bytes and all of them under "
                f"{ENV_TOTAL_MAX_BYTES:,}: delete large ones (`trigger-local envvars`, .env) and "
                "put large values in a file.")
    if exc.errno in PERMANENT_SPAWN_ERRORS:
        return (f"The task process could not start ({python} in {cwd}): "
                f"{exc.strerror or exc}. Check the project directory and its Python.")
    return None
