"""Environment variables per environment slug (TRIGGER_API.md §10). Task processes get them
as real environment variables when they start; a change reaches processes started afterwards."""

from __future__ import annotations

import re
from typing import Any

from ..errors import BadRequestError, NotFoundError
from .base import EngineBase

#: what a POSIX shell accepts as a variable name
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: names the daemon sets itself for every task process; a user value would break the wiring
RESERVED_PREFIXES = ("TRIGGER_LOCAL_",)
RESERVED = {"TRIGGER_API_URL", "TRIGGER_SECRET_KEY"}


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadRequestError(f"Invalid environment variable name {name!r}: use letters, digits and _")
    if name in RESERVED or name.startswith(RESERVED_PREFIXES):
        raise BadRequestError(f"{name} is set by trigger-local for every task process and cannot be overridden")
    return name


class EnvVarMixin(EngineBase):
    async def set_env_vars(self, env: str, values: dict[str, Any], *, is_secret: bool | None = None,
                           override: bool = True) -> None:
        checked = {check_name(k): v for k, v in values.items()}
        for name, value in checked.items():
            if not isinstance(value, str):
                raise BadRequestError(f"The value of {name} must be a string")
            if "\0" in value:  # no process could be started with it
                raise BadRequestError(f"The value of {name} must not contain a NUL character")
        async with self._tx() as tx:
            for name, value in checked.items():
                await tx.ops.put_env_var(env, name, value, is_secret, tx.now, override=override)

    async def delete_env_var(self, env: str, name: str) -> None:
        async with self._tx() as tx:
            if not await tx.ops.delete_env_var(env, name):
                raise NotFoundError("Environment variable not found", name=name)

    async def env_vars(self, env: str) -> list[dict[str, Any]]:
        return await self.store.read().list_env_vars(env)

    async def env_var(self, env: str, name: str) -> dict[str, Any]:
        found = await self.store.read().get_env_var(env, name)
        if found is None:
            raise NotFoundError("Environment variable not found", name=name)
        return found

    async def process_env(self, env: str = "dev") -> dict[str, str]:
        """What a new task process gets on top of the daemon's own environment."""
        return {v["name"]: v["value"] for v in await self.env_vars(env)}
