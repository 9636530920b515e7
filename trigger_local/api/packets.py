"""`/api/v2/packets/{name}` (§2.3): where the SDK offloads payloads of 128 KiB and more. The
answer's `presignedUrl` is ours, `/api/v1/local/packets/{name}?sig=…`, which takes the PUT of
the raw packet and serves it back, authorised by the signature alone. On a store several
daemons share, each packet is also the store's (packet_sharing.py): any daemon serves it."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from .. import packet_sharing, packet_store
from ..engine import TriggerRequest
from ..errors import AuthenticationError, BadRequestError, NotFoundError
from ..store.interface import SharedPackets
from . import auth
from .auth import Caller
from .common import base_url, ok, read_body, require_key, require_known_project, services_of
from .errors import JsonErrorRoute
from .services import DaemonServices

router = APIRouter(route_class=JsonErrorRoute, tags=["packets"])


def _checked_name(name: str) -> str:
    problem = packet_store.name_problem(name)
    if problem is not None:
        raise BadRequestError(f"Invalid packet name {name[:60]!r}: {problem}")
    return name


def _shared(svc: DaemonServices) -> SharedPackets | None:
    return svc.engine.packets


async def _owner(svc: DaemonServices, name: str) -> tuple[bool, str | None]:
    """packet_store.owner, of the packet the daemons sharing the store know by `name`."""
    await packet_sharing.hold(_shared(svc), svc.settings.home, name)
    return packet_store.owner(svc.settings.home, name)


async def _answer(request: Request, svc: DaemonServices, name: str,
                  upload: bool) -> Response:
    """A URL for packet `name`, of the caller's project; another project's packet is 404 to a
    project key (as if it did not exist), and cannot be replaced through it. A new packet is
    not uploaded for a project the daemon does not serve."""
    caller = require_key(request, svc)
    exists, project = await _owner(svc, name)
    if exists and not caller.sees(project):
        raise NotFoundError("Packet not found", name=name)
    if upload and not exists:
        require_known_project(svc, caller)
    url = packet_store.presigned_url(base_url(request, svc), svc.secret_key, name,
                                     project if exists else caller.project)
    return ok({"presignedUrl": url, "storagePath": name})


async def check_payload_packets(svc: DaemonServices, caller: Caller,
                                reqs: Iterable[TriggerRequest]) -> None:
    """A payload of type `application/store` names a packet: naming one of a project the caller
    does not see is 404, as that packet is to it (its run's `payloadPresignedUrl` and task
    would read it). A name no packet has yet stays the task's dangling name."""
    for req in reqs:
        if req.payload_type == packet_store.STORE and req.payload:
            exists, project = await _owner(svc, req.payload)
            if exists and not caller.sees(project):
                raise NotFoundError("Packet not found", name=req.payload)


@router.put("/api/v2/packets/{name:path}")
async def upload_url(name: str, request: Request) -> Response:
    return await _answer(request, services_of(request), _checked_name(name), upload=True)


@router.get("/api/v2/packets/{name:path}")
async def download_url(name: str, request: Request) -> Response:
    return await _answer(request, services_of(request), _checked_name(name), upload=False)


def _signed(request: Request, svc: DaemonServices, name: str) -> str | None:
    """The project the URL was signed for (None: the daemon's key); 401 for a bad signature."""
    project = request.query_params.get("project") or None
    if not auth.same(request.query_params.get("sig", ""),
                     packet_store.signature(svc.secret_key, name, project)):
        raise AuthenticationError("Invalid packet URL signature")
    return project


@router.put("/api/v1/local/packets/{name:path}")
async def put_packet(name: str, request: Request) -> Response:
    svc = services_of(request)
    project = _signed(request, svc, _checked_name(name))
    data = await read_body(request, packet_store.PACKET_LIMIT_BYTES)
    exists, owner = await _owner(svc, name)
    if exists and owner != project:  # made meanwhile by another project (or the daemon's key)
        raise NotFoundError("Packet not found", name=name)
    try:
        await packet_sharing.write(_shared(svc), svc.settings.home, name, data,
                                   request.headers.get("content-type") or "application/json",
                                   project)
    except ValueError as exc:
        raise BadRequestError(str(exc)) from exc
    return Response(status_code=200)


@router.get("/api/v1/local/packets/{name:path}")
async def get_packet(name: str, request: Request) -> Response:
    svc = services_of(request)
    _signed(request, svc, _checked_name(name))
    await packet_sharing.hold(_shared(svc), svc.settings.home, name)
    found = packet_store.read(svc.settings.home, name)
    if found is None:
        raise NotFoundError("Packet not found", name=name)
    data, content_type = found
    return Response(content=data, media_type=content_type)
