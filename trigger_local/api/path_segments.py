"""An escaped "/" (`%2F`) inside a path segment stays inside that segment.

The SDK and the CLI escape what they put into a path (`runs show ../../etc` asks for
`/api/v3/runs/..%2F..%2Fetc`), but the HTTP server hands the router the path with every escape
undone, so such a request matched another route, or none ("Resource not found"), instead of
reaching the run route and its "Run not found". `EncodedSlashes` routes such a request on a
path whose segments keep "/" (and "%", so that the escape reads back exactly) escaped, which
no route's pattern splits on; `JsonErrorRoute.matches` (api/errors.py) unescapes the path
parameters, so a `{name:path}` parameter (a packet name, a queue name) gets its slashes.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

#: set in the scope of a request routed on `routed_path`
ESCAPED = "trigger_local.escaped_slashes"
_ESCAPE = re.compile(r"%2[5F]")


def routed_path(raw_path: bytes) -> str:
    """The path the router matches: `raw_path` unescaped segment by segment, except "%" and
    "/" inside a segment (`%25`, `%2F`)."""
    raw = raw_path.split(b"?", 1)[0].decode("ascii", "replace")
    return "/".join(unquote(segment).replace("%", "%25").replace("/", "%2F")
                    for segment in raw.split("/"))


def path_params(params: dict[str, object]) -> dict[str, object]:
    """Route parameters of a path `routed_path` made, unescaped."""
    return {k: _ESCAPE.sub(lambda m: "%" if m.group() == "%25" else "/", v)
            if isinstance(v, str) else v for k, v in params.items()}


class EncodedSlashes:
    """ASGI middleware: a request whose raw path escapes a "/" is routed on `routed_path`;
    every other request goes through untouched (one bytes search)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] in ("http", "websocket") and raw and b"%2" in raw \
                and (b"%2F" in raw or b"%2f" in raw):
            # raw_path holds root_path too; the daemon serves at "/"
            scope = {**scope, "path": routed_path(raw), ESCAPED: True}
        await self.app(scope, receive, send)
