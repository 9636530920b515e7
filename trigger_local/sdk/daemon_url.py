"""A daemon URL that cannot be one is refused before any request, in one line naming where it
came from and what is wrong with it: httpx's InvalidURL is not a transport error (a traceback),
its own words ("Invalid port: ':1'" for `http://[::1`) do not say what to change, and a URL
without http:// read as a lost connection. `transport_error` says what a request's transport
failure means: no daemon at the address, or the connection to it lost mid-request."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..config import DEFAULT_PORT
from ..errors import DaemonConnectionLostError, DaemonNotRunningError, ValidationError

if TYPE_CHECKING:
    import httpx

EXAMPLE = f"http://127.0.0.1:{DEFAULT_PORT}"
#: where a URL came from, and what to do about it
GIVEN = ("The daemon URL {url!r} (given with --url, or configure(base_url=...))",
         "Check the URL given.")
FROM_ENV = ("TRIGGER_API_URL={url!r}", "Fix TRIGGER_API_URL, or unset it for the local daemon.")
FROM_HOME = ("The daemon URL {url!r} (from TRIGGER_LOCAL_HOST, or the home's daemon.json)",
             "Check TRIGGER_LOCAL_HOST.")


def check_daemon_url(url: str, source: tuple[str, str]) -> None:
    """ValidationError naming `source` (GIVEN, FROM_ENV or FROM_HOME) when `url` cannot be a
    daemon's address."""
    name, fix = source[0].format(url=url), source[1]
    if not url.strip():
        raise ValidationError(f"The daemon URL is empty ({url!r}): give the daemon's address, "
                              f"e.g. {EXAMPLE}. {fix}")
    problem = _problem(url)
    if problem:
        raise ValidationError(f"{name} is not a daemon URL: {problem}. {fix}")


def _problem(url: str) -> str | None:
    import httpx  # here, not at import: a task process that makes no call never loads it

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return _unparsable(url, str(exc))
    scheme = parsed.scheme
    if scheme not in ("http", "https"):  # `localhost:8030` parses as scheme "localhost"
        return (f"it must start with http:// or https://, not {scheme}://"
                if scheme and "://" in url else
                f"it does not start with http:// or https:// (e.g. {EXAMPLE})")
    if parsed.port is not None and parsed.port > 65535:
        return f"its port {parsed.port} is over 65535"
    return None


def _unparsable(url: str, message: str) -> str:
    """httpx's InvalidURL `message` about `url`, in words that say what to change."""
    authority = url.partition("://")[2].split("/", 1)[0]
    if "[" in authority and "]" not in authority:
        return f"its IPv6 address opens [ but does not close it (e.g. http://[::1]:{DEFAULT_PORT})"
    port = re.fullmatch(r"Invalid port: '(.*)'", message)
    if port:
        return f"its port {port[1]!r} is not a number up to 65535"
    address = re.fullmatch(r"Invalid IPv6 address: '(.*)'", message)
    if address:
        return f"{address[1]} is not an IPv6 address"
    return message[:1].lower() + message[1:]


def transport_error(exc: httpx.TransportError, url: str) -> Exception:
    """What a request's transport failure means to the caller (the module docstring)."""
    import httpx
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return DaemonNotRunningError(f"The trigger-local daemon is not running at {url}. Start it "
                                     "with `trigger-local up` (or `trigger-local dev` in your "
                                     "project).")
    return DaemonConnectionLostError(
        f"Lost the connection to the daemon at {url} ({type(exc).__name__}: {exc}). "
        "Check it with `trigger-local status` and try again.")
