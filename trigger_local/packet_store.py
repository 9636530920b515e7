"""Large payloads offloaded by the SDKs (TRIGGER_API.md §2.3): files under `$HOME/packets`,
reached through local "presigned" URLs signed with the daemon secret, so a client can PUT
and GET a packet without the API key, as it would against Trigger.dev's object storage.

A run triggered with `payloadType: application/store` keeps the packet's name as its payload;
`resolve` turns it back into the real payload for the task process.

A packet belongs to the project whose key asked for its upload URL (None: the daemon's key):
the URL carries that project, signed, and the packet's `.meta` file records it."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from urllib.parse import quote

STORE = "application/store"
#: a step's result this large is kept as a packet, its record holds the name (as the SDKs
#: offload payloads of this size)
OFFLOAD_BYTES = 128 * 1024
#: offloaded packets are big by definition; this only stops a runaway upload
PACKET_LIMIT_BYTES = 64 * 1024 * 1024


def signature(secret: str, name: str, project: str | None = None) -> str:
    signed = f"packet:{name}" if project is None else f"packet:{name}\n{project}"
    return hmac.new(secret.encode(), signed.encode(), hashlib.sha256).hexdigest()


def presigned_url(base: str, secret: str, name: str, project: str | None = None) -> str:
    url = f"{base}/api/v1/local/packets/{quote(name, safe='/')}?sig="
    url += signature(secret, name, project)
    return url if project is None else f"{url}&project={quote(project)}"


#: a packet name, and each `/`-separated part of it (a file name, with room for `.part`/`.meta`)
MAX_NAME_CHARS = 1024
MAX_PART_CHARS = 200
#: the endings of a packet's own files beside it (its upload under way, its project and type):
#: no packet, nor directory of packets, is named so, in any case (`x.json.META` is the file
#: `x.json.meta` on a case-insensitive disk: macOS's, a FAT or casefolded Linux one)
OWN_FILES = (".part", ".meta")


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a packet's name, or None when it can."""
    parts = name.strip("/").split("/")
    if not name.strip("/") or ".." in parts or "." in parts:
        return "it must be a relative path without . or .. parts"
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        return "it must not contain NUL or other control characters"
    if any(p.casefold().endswith(OWN_FILES) for p in parts):
        return "no part of it may end in .part or .meta (the names of a packet's own files)"
    if len(name) > MAX_NAME_CHARS or any(len(p.encode()) > MAX_PART_CHARS for p in parts):
        return (f"it must be at most {MAX_NAME_CHARS} characters, each part between slashes at "
                f"most {MAX_PART_CHARS} bytes")
    return None


def path_of(home: Path, name: str) -> Path:
    """The file for `name`, refusing anything that would leave the packets directory."""
    root = (Path(home) / "packets").resolve()
    problem = name_problem(name)
    target = (root / name.lstrip("/")).resolve() if problem is None else root
    if problem is not None or root not in target.parents:
        raise ValueError(f"Invalid packet name {name[:60]!r}: "
                         f"{problem or 'it must stay inside the packets directory'}")
    return target


def digest(data: bytes) -> str:
    """What tells a packet's content from another's (packet_sharing.py)."""
    return hashlib.sha256(data).hexdigest()


def writable(home: Path, name: str) -> Path:
    """The file of packet `name`; ValueError for a name that cannot be one, or that an existing
    packet makes impossible (a name under a packet file, or a packet where a directory is)."""
    target = path_of(home, name)
    root = (Path(home) / "packets").resolve()
    for parent in target.relative_to(root).parents:
        if (root / parent).is_file():
            raise ValueError(f"Invalid packet name {name[:60]!r}: {parent} is already a packet, "
                             "not a directory")
    if target.is_dir():
        raise ValueError(f"Invalid packet name {name[:60]!r}: it is a directory of other packets")
    return target


def write(home: Path, name: str, data: bytes, content_type: str,
          project: str | None = None, *, shared: bool = False, sha: str | None = None) -> str:
    """Store a packet; answers its `digest` (`sha`: known already). `shared`: the packet is
    also the shared store's (packet_sharing.py). ValueError as `writable`."""
    target = writable(home, name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:  # a packet made meanwhile
        raise ValueError(f"Invalid packet name {name[:60]!r}: {exc.strerror}") from exc
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    partial.replace(target)  # readers never see half a packet
    sha = sha or digest(data)
    meta: dict[str, object] = {"contentType": content_type, "project": project, "digest": sha}
    if shared:
        meta["shared"] = True
    target.with_name(target.name + ".meta").write_text(json.dumps(meta))
    return sha


def owner(home: Path, name: str) -> tuple[bool, str | None]:
    """(whether packet `name` exists, the project it belongs to: None for the daemon's key and
    for packets stored before packets had projects)."""
    try:
        target = path_of(home, name)
    except ValueError:
        return False, None
    if not target.is_file():
        return False, None
    project = _meta(target).get("project")
    return True, project if isinstance(project, str) else None


def held(home: Path, name: str) -> tuple[tuple[str | None, str, str | None], bool] | None:
    """((project, content type, digest), whether it is a shared store's) of the home's file of
    packet `name` (digest None: a packet stored before packets had one); None when the home
    has no such packet."""
    try:
        target = path_of(home, name)
    except ValueError:
        return None
    if not target.is_file():
        return None
    meta = _meta(target)
    project, content_type, sha = (meta.get(k) for k in ("project", "contentType", "digest"))
    return ((project if isinstance(project, str) else None,
             content_type if isinstance(content_type, str) else "application/json",
             sha if isinstance(sha, str) else None), meta.get("shared") is True)


def _meta(target: Path) -> dict[str, object]:
    """The `.meta` beside packet file `target`; {} when it is missing or not a JSON object
    (a packet stored before there were `.meta` files, or one a full disk cut short)."""
    try:
        meta = json.loads(target.with_name(target.name + ".meta").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def read(home: Path, name: str) -> tuple[bytes, str] | None:
    try:
        target = path_of(home, name)
        data = target.read_bytes()
    except (OSError, ValueError):
        return None
    content_type = _meta(target).get("contentType")
    return data, content_type if isinstance(content_type, str) and content_type \
        else "application/json"


def resolve(home: Path, payload: str | None,
            payload_type: str | None) -> tuple[str | None, str | None]:
    """The real (payload, type) of a run whose payload may be an offloaded packet."""
    if payload_type != STORE or not payload:
        return payload, payload_type
    found = read(home, payload)
    if found is None:
        return payload, payload_type  # the task sees the dangling name rather than nothing
    data, content_type = found
    return data.decode("utf-8", errors="replace"), content_type.split(";")[0].strip()


def delete(home: Path, name: str) -> None:
    """Remove a packet and its `.meta` (retention); one already gone is no error."""
    try:
        target = path_of(home, name)
    except ValueError:
        return
    for path in (target, target.with_name(target.name + ".meta")):
        path.unlink(missing_ok=True)


def offload(home: Path, name: str, data: str | None, data_type: str, *,
            shared: bool = False) -> tuple[str | None, str]:
    """(data, type) as a record keeps it: a packet `name` (type `application/store`) when data
    is `OFFLOAD_BYTES` or more, else unchanged; `resolve` turns it back. `shared`: as `write`."""
    if data is None or not offloads(data):
        return data, data_type
    write(home, name, data.encode(), data_type, shared=shared)
    return name, STORE


def offloads(data: str) -> bool:
    """Whether `offload` keeps `data` as a packet."""
    return len(data) >= OFFLOAD_BYTES // 4 and len(data.encode()) >= OFFLOAD_BYTES
