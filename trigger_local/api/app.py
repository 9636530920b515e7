"""`create_app(services)`: the daemon's HTTP API — Trigger.dev's management routes (so its
SDK works against the daemon), our `/api/v1/local/…` routes and the `/engine/v1` worker
protocol. OpenAPI is served at `/openapi.json`, and as a page that works offline at `/docs`."""

from __future__ import annotations

import asyncio
from collections import Counter

from fastapi import FastAPI
from starlette.types import ASGIApp

from .. import __version__
from . import (
    batches,
    channel,
    checkpoints,
    docs_page,
    envvars,
    local,
    packets,
    projects,
    queues,
    realtime,
    runs,
    runs_list,
    schedules,
    stream,
    streams,
    tokens,
    traces,
    triggers,
    worker,
)
from .auth import ProjectKeys
from .common import SafeJSONResponse
from .errors import install_handlers
from .hot_routes import HotRoutes
from .path_segments import EncodedSlashes
from .run_auth import RunAuth
from .services import DaemonServices

__all__ = ["DaemonServices", "create_app", "create_served_app"]


def create_app(services: DaemonServices) -> FastAPI:
    app = FastAPI(title="trigger-local", version=__version__, docs_url=None, redoc_url=None,
                  default_response_class=SafeJSONResponse,
                  description="Trigger.dev's management API for one machine, plus the local and "
                              "worker routes.")
    app.state.services = services
    app.state.run_auth = RunAuth(services.secret_key)
    app.state.project_keys = ProjectKeys(services.secret_key)
    app.state.batch_items_lock = asyncio.Lock()
    app.state.channel_frames = Counter()  # frames received on them, by kind (api/channel.py)
    app.state.channel_sent = Counter()  # messages written on them, and their frames
    app.state.channels = set()  # the open channels of shared processes (api/channel.py)
    install_handlers(app)
    app.add_middleware(EncodedSlashes)  # `%2F` stays inside its segment (api/path_segments.py)
    # routes are matched in order: the worker protocol is the hot path (the daemon's single
    # trigger never reaches FastAPI: `create_served_app`)
    for module in (worker, channel, checkpoints, triggers, batches, runs_list, runs, traces,
                   tokens, queues, schedules, envvars, packets, local, projects, stream, realtime,
                   streams, docs_page):
        app.include_router(module.router)
    return app


def create_served_app(services: DaemonServices) -> ASGIApp:
    """The app the daemon serves: `create_app`'s, with the single trigger route answered before
    FastAPI's stack (api/hot_routes.py)."""
    return HotRoutes(create_app(services))
